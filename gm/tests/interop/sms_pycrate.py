#!/usr/bin/env python3
"""pycrate's view of SMS PDUs, for gm/tests/sms_pycrate.rs.

    sms_pycrate.py decode < lines    # "KIND HEX" in, one JSON object out per line
    sms_pycrate.py encode            # "KIND HEX" lines of PDUs pycrate builds

KIND is `rp` (an RP message, TS 24.011 §7.3) or a TPDU (TS 23.040):
submit, deliver, status_report, submit_report_ack, submit_report_error,
deliver_report_ack, deliver_report_error. The JSON is flat: pycrate's field
names (TP_MTI, TP_DA...), every value a string; a PDU pycrate cannot decode
gives {"error": "..."}.

Fields are read as pycrate parses them, with one exception: the time zone
of a time stamp is printed from its two digit fields (tens*10 + units
quarter hours), because pycrate's TimeZone.decode() and encode() treat the
tens digit as a binary high nibble (-5.5 h is coded 0x69, which TS 23.040's
BCD reads as -4 h).
"""
import json
import sys
import time

from pycrate_mobile.TS23040_SMS import (
    SMS_DELIVER, SMS_DELIVER_REPORT_RP_ACK, SMS_DELIVER_REPORT_RP_ERROR,
    SMS_STATUS_REPORT, SMS_SUBMIT, SMS_SUBMIT_REPORT_RP_ACK,
    SMS_SUBMIT_REPORT_RP_ERROR, TP_VP, TP_VPe)
from pycrate_mobile.TS24011_PPSMS import (
    RP_ACK_MO, RP_ACK_MT, RP_DATA_MO, RP_DATA_MT, RP_ERROR_MO, RP_ERROR_MT,
    RP_SMMA, RPOriginatorAddress)

TPDU = {
    'submit': SMS_SUBMIT,
    'deliver': SMS_DELIVER,
    'status_report': SMS_STATUS_REPORT,
    'submit_report_ack': SMS_SUBMIT_REPORT_RP_ACK,
    'submit_report_error': SMS_SUBMIT_REPORT_RP_ERROR,
    'deliver_report_ack': SMS_DELIVER_REPORT_RP_ACK,
    'deliver_report_error': SMS_DELIVER_REPORT_RP_ERROR,
}
RP = {0: RP_DATA_MO, 1: RP_DATA_MT, 2: RP_ACK_MO, 3: RP_ACK_MT,
      4: RP_ERROR_MO, 5: RP_ERROR_MT, 6: RP_SMMA}


def stamp(t):
    """YY-MM-DD hh:mm:ss+Q, Q the signed quarter hours."""
    parts = [t[n].decode() for n in ('Year', 'Mon', 'Day', 'Hour', 'Min', 'Sec')]
    tz = t['TZ']
    q = tz[2]() * 10 + tz[0]()
    sign = '-' if tz[1]() else '+'
    return '%02d-%02d-%02d %02d:%02d:%02d%s%d' % (*parts, sign, q)


def address(a):
    return '%d/%d/%s' % (a['Type'](), a['NumberingPlan'](), a['Num'].decode())


def tp_fields(m):
    f = {}
    for e in m:
        name = e._name
        if e.get_trans() or name in ('spare', 'reserved'):
            continue
        if name in ('TP_DA', 'TP_OA', 'TP_RA'):
            f[name] = address(e)
            f[name + '.Len'] = str(e['Len']())
        elif name in ('TP_PID', 'TP_DCS', 'TP_PI'):
            f[name] = str(e.to_bytes()[0])
        elif name in ('TP_SCTS', 'TP_DT'):
            f[name] = stamp(e)
        elif isinstance(e, TP_VPe):
            f['TP_VP'] = 'enhanced:' + e.to_bytes().hex()
        elif isinstance(e, TP_VP):
            f['TP_VP'] = 'absolute:' + stamp(e)
        elif name == 'TP_VP':
            f['TP_VP'] = 'relative:%d' % e()
        elif name == 'TP_UD':
            f['TP_UDL'] = str(e['UDL']())
            udh = e['UDH']
            if not udh.get_trans():
                f['TP_UDH'] = ','.join(
                    '%02x:%s' % (ie['T'](), ie['V'].to_bytes().hex())
                    for ie in udh['UDH'])
            ud = e['UD'].decode()
            if isinstance(ud, str):
                f['text'] = ud
            else:
                f['data'] = ud.hex()
        else:
            f[name] = str(e())
    return f


def lv_address(ie):
    raw = ie[-1].to_bytes()
    if not raw:
        return ''
    a = RPOriginatorAddress()
    a.from_bytes(raw)
    return address(a)


def rp_fields(m):
    f = {'RP_MTI': str(m['MTI']()), 'RP_MR': str(m['Ref']())}
    names = [e._name for e in m if not e.get_trans()]
    if 'RPOriginatorAddress' in names:
        f['RP_OA'] = lv_address(m['RPOriginatorAddress'])
        f['RP_DA'] = lv_address(m['RPDestinationAddress'])
    if 'RPCause' in names:
        c = m['RPCause'][-1]
        f['RP_Cause'] = str(c['Value']())
        f['RP_Diag'] = c['Diag'].to_bytes().hex() if not c['Diag'].get_trans() else ''
    if 'RPUserData' in names:
        ud = m['RPUserData'][-1]
        f['RP_UD'] = ud.to_bytes().hex()
        # pycrate decodes the TPDU in place when it can.
        f['RP_TPDU'] = ud._name
    return f


def decode(kind, data):
    if kind == 'rp':
        if not data or (data[0] & 7) not in RP:
            return {'error': 'no RP type'}
        m = RP[data[0] & 7]()
        m.from_bytes(data)
        f = rp_fields(m)
    else:
        m = TPDU[kind]()
        m.from_bytes(data)
        f = tp_fields(m)
    if m.to_bytes() != data:
        f['pycrate_reencoded'] = m.to_bytes().hex()
    return f


def ts(y, mo, d, h, mi, s):
    return time.struct_time((y, mo, d, h, mi, s, 0, 0, 0))


def encode():
    """PDUs built with pycrate's own encoders."""
    out = []
    gsm = {'Group': 0, 'Charset': 0}
    ucs = {'Group': 0, 'Charset': 2}
    data8 = {'Group': 0, 'Charset': 1}

    # SMS-SUBMIT, relative VP, GSM 7-bit with extension characters.
    m = SMS_SUBMIT(val={'TP_MR': 5, 'TP_VPF': 2, 'TP_DA': {'Num': '33612345678'},
                        'TP_DCS': gsm, 'TP_UD': {'UD': 'Hello {world} [x] ~ \\ | ^ €'}})
    m[10].set_val(167)
    out.append(('submit', m))
    # SMS-SUBMIT, absolute VP (whole-hour zone), UCS-2, SRR, RD, RP.
    m = SMS_SUBMIT(val={'TP_RP': 1, 'TP_SRR': 1, 'TP_RD': 1, 'TP_MR': 255, 'TP_VPF': 3,
                        'TP_DA': {'Type': 2, 'NumberingPlan': 1, 'Num': '0612345678'},
                        'TP_DCS': ucs})
    m[11].encode(ts(2027, 1, 31, 23, 59, 58), 2.0)
    m['TP_UD']['UD'].encode('Привет, мир 😀')
    out.append(('submit', m))
    # SMS-SUBMIT, enhanced VP (relative, 24 hours), 8-bit data.
    m = SMS_SUBMIT(val={'TP_MR': 0, 'TP_VPF': 1, 'TP_DA': {'Num': '1234*#5'},
                        'TP_DCS': data8, 'TP_PID': {'Format': 0}})
    m[12].from_bytes(bytes.fromhex('01a70000000000'))
    m['TP_UD']['UD'].set_val(bytes(range(0, 140, 7)))
    out.append(('submit', m))
    # SMS-SUBMIT, every character of the default alphabet and of the
    # extension table (form feed, ^ { } \\ [ ~ ] | €), pycrate's tables.
    from pycrate_mobile.TS23038 import _GSM7bTab
    every = _GSM7bTab.replace('\x1b', '') + '\x0c^{}\\[~]|€'
    m = SMS_SUBMIT(val={'TP_MR': 6, 'TP_DA': {'Num': '33612345678'}, 'TP_DCS': gsm,
                        'TP_UD': {'UD': every}})
    out.append(('submit', m))
    # SMS-SUBMIT, concatenation with a 16-bit reference, GSM 7-bit.
    m = SMS_SUBMIT(val={'TP_UDHI': 1, 'TP_MR': 9, 'TP_DA': {'Num': '4915112345678'},
                        'TP_DCS': gsm})
    m['TP_UD']['UDH']['UDH'].set_val([{'T': 8, 'V': {'MsgRef': 0x1234, 'MsgParts': 2, 'MsgNum': 1}}])
    m['TP_UD']['UD'].encode('first part of two, 16-bit ref')
    out.append(('submit', m))
    # SMS-DELIVER, alphanumeric originator, 8-bit reference concatenation.
    m = SMS_DELIVER(val={'TP_UDHI': 1, 'TP_MMS': 1, 'TP_SRI': 1,
                         'TP_OA': {'Type': 5, 'NumberingPlan': 0, 'Num': 'Orange'},
                         'TP_DCS': gsm})
    m['TP_SCTS'].encode(ts(2026, 12, 5, 3, 10, 59), -2.0)
    m['TP_UD']['UDH']['UDH'].set_val([{'T': 0, 'V': {'MsgRef': 42, 'MsgParts': 3, 'MsgNum': 2}}])
    m['TP_UD']['UD'].encode('part two text')
    out.append(('deliver', m))
    # SMS-DELIVER, UCS-2 with a concatenation element, class 0 DCS.
    m = SMS_DELIVER(val={'TP_UDHI': 1, 'TP_MMS': 0, 'TP_LP': 1,
                         'TP_OA': {'Num': '447700900123'},
                         'TP_DCS': {'Group': 1, 'Charset': 2, 'Class': 0}})
    m['TP_SCTS'].encode(ts(2025, 6, 15, 12, 0, 0), 1.0)
    m['TP_UD']['UDH']['UDH'].set_val([{'T': 0, 'V': {'MsgRef': 7, 'MsgParts': 2, 'MsgNum': 2}}])
    m['TP_UD']['UD'].encode('日本語のテキスト')
    out.append(('deliver', m))
    # SMS-DELIVER, 8-bit data, message class 1 (group 15).
    m = SMS_DELIVER(val={'TP_MMS': 1, 'TP_OA': {'Type': 0, 'NumberingPlan': 0, 'Num': '12345'},
                         'TP_PID': {'Format': 1, 'Protocol': 0x3f}, 'TP_DCS': {'Group': 15, 'Charset': 1, 'Class': 1}})
    m['TP_SCTS'].encode(ts(2000, 1, 1, 0, 0, 0), 0.0)
    m['TP_UD']['UD'].set_val(b'\x00\xffdata')
    out.append(('deliver', m))
    # SMS-STATUS-REPORT without and with TP-PI.
    m = SMS_STATUS_REPORT(val={'TP_MMS': 1, 'TP_MR': 77, 'TP_RA': {'Num': '3361234567'}, 'TP_ST': 0})
    m['TP_SCTS'].encode(ts(2026, 12, 5, 3, 0, 0), 1.0)
    m['TP_DT'].encode(ts(2026, 12, 5, 3, 0, 9), 1.0)
    m['TP_PI'].set_trans(True)
    out.append(('status_report', m))
    m = SMS_STATUS_REPORT(val={'TP_MMS': 1, 'TP_SRQ': 1, 'TP_MR': 78, 'TP_RA': {'Num': '3361234567'},
                               'TP_ST': 0x40, 'TP_PI': {'TP_PID': 1, 'TP_DCS': 1, 'TP_UDL': 1},
                               'TP_DCS': gsm})
    m['TP_SCTS'].encode(ts(2026, 12, 5, 3, 0, 0), 0.0)
    m['TP_DT'].encode(ts(2026, 12, 5, 4, 0, 0), 0.0)
    m['TP_UD']['UD'].encode('expired!')
    out.append(('status_report', m))
    # SMS-SUBMIT-REPORT for RP-ACK and RP-ERROR.
    m = SMS_SUBMIT_REPORT_RP_ACK(val={'TP_PI': {'TP_PID': 0, 'TP_DCS': 0, 'TP_UDL': 0}})
    m['TP_SCTS'].encode(ts(2026, 12, 5, 3, 1, 2), 2.0)
    out.append(('submit_report_ack', m))
    m = SMS_SUBMIT_REPORT_RP_ERROR(val={'TP_FCS': 0xC3, 'TP_PI': {'TP_PID': 1, 'TP_DCS': 1, 'TP_UDL': 1},
                                        'TP_DCS': gsm})
    m['TP_SCTS'].encode(ts(2026, 12, 5, 3, 1, 2), 0.0)
    m['TP_UD']['UD'].encode('failed')
    out.append(('submit_report_error', m))
    # SMS-DELIVER-REPORT for RP-ACK and RP-ERROR.
    m = SMS_DELIVER_REPORT_RP_ACK(val={'TP_PI': {'TP_PID': 0, 'TP_DCS': 0, 'TP_UDL': 0}})
    out.append(('deliver_report_ack', m))
    m = SMS_DELIVER_REPORT_RP_ERROR(val={'TP_FCS': 0xD3, 'TP_PI': {'TP_PID': 1, 'TP_DCS': 1, 'TP_UDL': 0},
                                         'TP_PID': {'Format': 0}, 'TP_DCS': gsm})
    out.append(('deliver_report_error', m))

    lines = [(k, m.to_bytes()) for k, m in out]
    # RP messages around some of them.
    submit = lines[0][1]
    deliver = lines[5][1]
    sc = {'Type': 1, 'NumberingPlan': 1, 'Num': '3361234567'}
    rps = [
        RP_DATA_MO(val={'Ref': 3, 'RPDestinationAddress': sc, 'RPUserData': submit}),
        RP_DATA_MT(val={'Ref': 4, 'RPOriginatorAddress': {'Type': 2, 'NumberingPlan': 1, 'Num': '1234567'},
                        'RPUserData': deliver}),
        RP_ACK_MT(val={'Ref': 3, 'RPUserData': lines[10][1]}),
        RP_ACK_MO(val={'Ref': 4}),
        RP_ERROR_MO(val={'Ref': 5, 'RPCause': {'Ext': 0, 'Value': 22}, 'RPUserData': lines[13][1]}),
        RP_ERROR_MT(val={'Ref': 6, 'RPCause': {'Ext': 0, 'Value': 41, 'Diag': b'\x11'}}),
    ]
    lines.extend(('rp', m.to_bytes()) for m in rps)
    lines.append(('rp', RP_SMMA(val={'Ref': 7}).to_bytes()))
    for k, b in lines:
        print(k, b.hex())


def main():
    if sys.argv[1:] == ['encode']:
        encode()
        return
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        kind, hexdata = line.split()
        try:
            f = decode(kind, bytes.fromhex(hexdata))
        except Exception as e:  # pycrate raises many kinds
            f = {'error': '%s: %s' % (type(e).__name__, e)}
        print(json.dumps(f, ensure_ascii=True, sort_keys=True))


if __name__ == '__main__':
    main()
