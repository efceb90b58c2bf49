//! The SMS-over-IP procedures (TS 24.341 §5.3, as 3gpp-notes.md sums
//! them up), sans-IO: what goes into each SIP MESSAGE and what its
//! arrival means, for the UE ([`SmsUe`]) and for the network acting as
//! the service centre ([`SmsCentre`]).
//!
//! - MO: the UE sends RP-DATA (SMS-SUBMIT) to the service centre, which
//!   answers the MESSAGE with 202, then sends a MESSAGE with RP-ACK
//!   (SMS-SUBMIT-REPORT), or RP-ERROR, that the UE answers with 200.
//! - MT: the service centre sends RP-DATA (SMS-DELIVER); the UE answers
//!   200 and then sends a MESSAGE with RP-ACK (SMS-DELIVER-REPORT), or
//!   RP-ERROR when it cannot take the message.
//! - A status report, when the sender asked for one, travels as an MT
//!   RP-DATA holding SMS-STATUS-REPORT.
//!
//! The SIP side (transactions, the request's URIs, authentication) is the
//! caller's: these types take and return MESSAGE bodies, SIP statuses to
//! answer with, and typed events. Time is a [`Duration`] the caller counts.

use std::collections::HashMap;
use std::time::Duration;

use super::rp::{RpAck, RpCause, RpData, RpError, RpMessage, Warning};
use super::tpdu::{
    Address, Deliver, DeliverReport, Direction, StatusReport, Submit, SubmitReport, Timestamp, Tpdu,
};
use super::{Error, Reassembler, split};

/// The media type of an SMS-over-IP MESSAGE body (TS 24.341 §7.2).
pub const SMS_TYPE: &str = "application/vnd.3gpp.sms";

/// RP-Cause 1: unassigned (unallocated) number (TS 24.011 §8.2.5.4).
pub const CAUSE_UNASSIGNED: u8 = 1;
/// RP-Cause 41: temporary failure.
pub const CAUSE_TEMPORARY_FAILURE: u8 = 41;
/// RP-Cause 111: protocol error, unspecified.
pub const CAUSE_PROTOCOL_ERROR: u8 = 111;
/// TP-ST 0: short message received by the SME (TS 23.040 §9.2.3.15).
pub const ST_DELIVERED: u8 = 0x00;
/// TP-ST 0x40: remote procedure error (permanent).
pub const ST_REMOTE_ERROR: u8 = 0x40;

/// TR1M, how long the UE waits for the RP-ACK of its RP-DATA: TS 24.011
/// gives 35 to 45 seconds.
pub const TR1M: Duration = Duration::from_secs(40);

/// One MESSAGE body for the caller to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The RP-Message Reference it carries.
    pub rp_mr: u8,
    /// The body (type [`SMS_TYPE`]).
    pub body: Vec<u8>,
}

/// What happened, for the UE's application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UeEvent {
    /// The service centre took our RP-DATA (RP-ACK).
    Submitted {
        /// Its RP-MR.
        rp_mr: u8,
        /// The TP-MR of the SMS-SUBMIT (status reports name it).
        tp_mr: u8,
    },
    /// The service centre refused it (RP-ERROR), or TR1M ran out
    /// (`cause` 41, no report).
    SubmitFailed {
        /// Its RP-MR.
        rp_mr: u8,
        /// RP-Cause.
        cause: u8,
        /// TP-FCS of the SMS-SUBMIT-REPORT, if one came.
        tp_fcs: Option<u8>,
    },
    /// A whole message arrived (all its parts).
    Received {
        /// TP-OA.
        from: Address,
        /// The text.
        text: String,
        /// Set when the PDU was not in the standard form.
        warning: Option<Warning>,
    },
    /// A status report arrived.
    StatusReport {
        /// TP-MR of our SMS-SUBMIT.
        tp_mr: u8,
        /// TP-RA.
        recipient: Address,
        /// TP-ST.
        status: u8,
    },
}

/// How the UE answers a MESSAGE it received, and what to send next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UeIncoming {
    /// The SIP status for the MESSAGE: 200, or 415 (not an SMS body) or
    /// 400 (an RP message that does not decode).
    pub status: u16,
    /// A MESSAGE body to send to the service centre afterwards (the
    /// RP-ACK or RP-ERROR of an RP-DATA).
    pub reply: Option<Outgoing>,
    /// What it meant.
    pub event: Option<UeEvent>,
}

#[derive(Clone, Debug)]
struct PendingMo {
    tp_mr: u8,
    deadline: Duration,
}

/// The UE's side of SMS over IP.
#[derive(Debug)]
pub struct SmsUe {
    service_centre: Address,
    next_rp_mr: u8,
    next_tp_mr: u8,
    next_ref: u16,
    pending: HashMap<u8, PendingMo>,
    reassembler: Reassembler,
}

fn content_is_sms(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(SMS_TYPE))
}

impl SmsUe {
    /// A UE whose messages go to `service_centre` (its E.164 address).
    pub fn new(service_centre: Address) -> SmsUe {
        SmsUe {
            service_centre,
            next_rp_mr: 0,
            next_tp_mr: 0,
            next_ref: 0,
            pending: HashMap::new(),
            reassembler: Reassembler::new(16),
        }
    }

    /// RP-DATA bodies for `text` to `to` (one per part of a long text),
    /// sent at `now`; each waits for its RP-ACK until TR1M.
    pub fn submit(
        &mut self,
        to: Address,
        text: &str,
        status_report: bool,
        now: Duration,
    ) -> Result<Vec<Outgoing>, Error> {
        let reference = self.next_ref;
        self.next_ref = self.next_ref.wrapping_add(1);
        let parts = split(text, reference, false)?;
        let mut out = Vec::with_capacity(parts.len());
        for ud in parts {
            let tp_mr = self.next_tp_mr;
            self.next_tp_mr = self.next_tp_mr.wrapping_add(1);
            let rp_mr = self.next_rp_mr;
            self.next_rp_mr = self.next_rp_mr.wrapping_add(1);
            let mut submit = Submit::new(tp_mr, to.clone(), ud);
            submit.status_report_request = status_report;
            let data = RpData::mo(rp_mr, self.service_centre.clone(), &Tpdu::Submit(submit))?;
            let body = RpMessage::Data(data).encode()?;
            self.pending.insert(
                rp_mr,
                PendingMo {
                    tp_mr,
                    deadline: now + TR1M,
                },
            );
            out.push(Outgoing { rp_mr, body });
        }
        Ok(out)
    }

    /// How many RP-DATA wait for their RP-ACK.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Stops waiting for the RP-ACK of `rp_mr`: the MESSAGE that was to
    /// carry it was refused or never sent, so TR1M would only report a
    /// failure already known. `false` when it was not pending.
    pub fn abandon(&mut self, rp_mr: u8) -> bool {
        self.pending.remove(&rp_mr).is_some()
    }

    /// A MESSAGE from the network with this Content-Type and body.
    pub fn on_message(&mut self, content_type: &str, body: &[u8]) -> UeIncoming {
        let answer = |status, reply, event| UeIncoming {
            status,
            reply,
            event,
        };
        if !content_is_sms(content_type) {
            return answer(415, None, None);
        }
        let Ok(rp) = RpMessage::decode(body) else {
            return answer(400, None, None);
        };
        match rp {
            RpMessage::Ack(ack) => {
                let Some(p) = self.pending.remove(&ack.message_ref) else {
                    return answer(200, None, None);
                };
                answer(
                    200,
                    None,
                    Some(UeEvent::Submitted {
                        rp_mr: ack.message_ref,
                        tp_mr: p.tp_mr,
                    }),
                )
            }
            RpMessage::Error(e) => {
                if self.pending.remove(&e.message_ref).is_none() {
                    return answer(200, None, None);
                }
                let tp_fcs = match e.tpdu() {
                    Some(Ok(Tpdu::SubmitReport(r))) => r.failure_cause,
                    _ => None,
                };
                answer(
                    200,
                    None,
                    Some(UeEvent::SubmitFailed {
                        rp_mr: e.message_ref,
                        cause: e.cause.value,
                        tp_fcs,
                    }),
                )
            }
            RpMessage::Data(data) => {
                let rp_mr = data.message_ref;
                let refuse = |cause: u8| -> Option<Outgoing> {
                    let report = Tpdu::DeliverReport(DeliverReport {
                        failure_cause: Some(0xFF),
                        pid: None,
                        dcs: None,
                        user_data: None,
                    });
                    let e = RpError {
                        direction: Direction::MsToNetwork,
                        message_ref: rp_mr,
                        cause: RpCause {
                            value: cause,
                            diagnostic: Vec::new(),
                        },
                        user_data: report.encode().ok(),
                    };
                    RpMessage::Error(e)
                        .encode()
                        .ok()
                        .map(|body| Outgoing { rp_mr, body })
                };
                let decoded = match data.tpdu() {
                    Ok(d) => d,
                    Err(e) => return answer(200, refuse(e.rp_cause()), None),
                };
                let event = match decoded.tpdu {
                    Tpdu::Deliver(d) => {
                        let key = format!("{}/{}", d.originator.ton, d.originator.number);
                        match self.reassembler.push(&key, &d.user_data) {
                            Ok(Some(body)) => match body.text() {
                                Ok(text) => Some(UeEvent::Received {
                                    from: d.originator,
                                    text,
                                    warning: decoded.warning,
                                }),
                                Err(e) => return answer(200, refuse(e.rp_cause()), None),
                            },
                            Ok(None) => None,
                            Err(e) => return answer(200, refuse(e.rp_cause()), None),
                        }
                    }
                    Tpdu::StatusReport(r) => Some(UeEvent::StatusReport {
                        tp_mr: r.message_ref,
                        recipient: r.recipient,
                        status: r.status,
                    }),
                    _ => return answer(200, refuse(CAUSE_PROTOCOL_ERROR), None),
                };
                let report = Tpdu::DeliverReport(DeliverReport {
                    failure_cause: None,
                    pid: None,
                    dcs: None,
                    user_data: None,
                });
                let ack = RpMessage::Ack(RpAck {
                    direction: Direction::MsToNetwork,
                    message_ref: rp_mr,
                    user_data: report.encode().ok(),
                });
                let reply = ack.encode().ok().map(|body| Outgoing { rp_mr, body });
                answer(200, reply, event)
            }
            RpMessage::Smma { .. } => answer(400, None, None),
        }
    }

    /// When TR1M next runs out.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// RP-DATA whose RP-ACK did not come by `now` fail (cause 41).
    pub fn handle_timeout(&mut self, now: Duration) -> Vec<UeEvent> {
        let mut late: Vec<u8> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(mr, _)| *mr)
            .collect();
        late.sort_unstable();
        late.into_iter()
            .filter_map(|rp_mr| self.pending.remove(&rp_mr).map(|_| rp_mr))
            .map(|rp_mr| UeEvent::SubmitFailed {
                rp_mr,
                cause: CAUSE_TEMPORARY_FAILURE,
                tp_fcs: None,
            })
            .collect()
    }
}

/// A MESSAGE the service centre sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CentreSend {
    /// To whom: the subscriber's public identity (IMPU) as the centre
    /// knows it.
    pub to: String,
    /// The body (type [`SMS_TYPE`]).
    pub body: Vec<u8>,
}

/// What the service centre decided, for its operator's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CentreEvent {
    /// An SMS-SUBMIT was taken (RP-ACK to the sender) and goes on to
    /// its recipient as an SMS-DELIVER.
    Submitted {
        /// The sender's E.164 digits.
        from: String,
        /// The recipient's E.164 digits (TP-DA).
        to: String,
        /// The RP-MR of the sender's RP-DATA.
        rp_mr: u8,
        /// This part's number and the number of parts (1 of 1 for a
        /// message that is not concatenated).
        part: u8,
        /// How many parts the message has.
        parts: u8,
    },
    /// An RP-DATA was refused (RP-ERROR to the sender).
    Refused {
        /// The sender's IMPU.
        from: String,
        /// The recipient's digits, when the SMS-SUBMIT could be read.
        to: Option<String>,
        /// The RP-MR of the sender's RP-DATA.
        rp_mr: u8,
        /// RP-Cause (e.g. [`CAUSE_UNASSIGNED`]).
        cause: u8,
    },
    /// The recipient acknowledged an SMS-DELIVER (RP-ACK).
    Delivered {
        /// The recipient's IMPU.
        to: String,
        /// The RP-MR of our RP-DATA.
        rp_mr: u8,
    },
    /// The recipient refused an SMS-DELIVER (RP-ERROR).
    NotDelivered {
        /// The recipient's IMPU.
        to: String,
        /// The RP-MR of our RP-DATA.
        rp_mr: u8,
        /// RP-Cause.
        cause: u8,
    },
}

/// How the service centre answers a MESSAGE, and what it sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CentreReply {
    /// The SIP status for the MESSAGE: 202 for an RP-DATA (the result
    /// follows in a MESSAGE), 200 for an RP-ACK or RP-ERROR, 415 or 400.
    pub status: u16,
    /// MESSAGEs to send.
    pub send: Vec<CentreSend>,
    /// What was decided.
    pub events: Vec<CentreEvent>,
}

#[derive(Clone, Debug)]
struct Delivery {
    sender: String,
    tp_mr: u8,
    report: bool,
    recipient: Address,
    scts: Timestamp,
}

/// The network acting as the service centre: it acknowledges SMS-SUBMITs,
/// delivers them to the registered recipient, and returns status reports
/// when asked.
#[derive(Debug)]
pub struct SmsCentre {
    address: Address,
    /// E.164 digits -> IMPU, and back.
    by_number: HashMap<String, String>,
    by_impu: HashMap<String, String>,
    next_rp_mr: u8,
    deliveries: HashMap<(String, u8), Delivery>,
}

impl SmsCentre {
    /// A service centre with its own E.164 `address`.
    pub fn new(address: Address) -> SmsCentre {
        SmsCentre {
            address,
            by_number: HashMap::new(),
            by_impu: HashMap::new(),
            next_rp_mr: 0,
            deliveries: HashMap::new(),
        }
    }

    /// Makes `impu` reachable as the E.164 number `digits` (what a
    /// registration's P-Associated-URI `tel:` gives).
    pub fn subscriber(&mut self, digits: &str, impu: &str) {
        self.by_number.insert(digits.to_owned(), impu.to_owned());
        self.by_impu.insert(impu.to_owned(), digits.to_owned());
    }

    /// Removes `impu` (deregistered): messages to it fail with cause 1.
    pub fn remove(&mut self, impu: &str) {
        if let Some(d) = self.by_impu.remove(impu) {
            self.by_number.remove(&d);
        }
    }

    fn rp_mr(&mut self) -> u8 {
        let m = self.next_rp_mr;
        self.next_rp_mr = self.next_rp_mr.wrapping_add(1);
        m
    }

    /// A MESSAGE from the subscriber `from` (its authenticated IMPU),
    /// stamped `scts` by the centre's clock.
    pub fn on_message(
        &mut self,
        from: &str,
        content_type: &str,
        body: &[u8],
        scts: Timestamp,
    ) -> CentreReply {
        let reply = |status, send, events| CentreReply {
            status,
            send,
            events,
        };
        if !content_is_sms(content_type) {
            return reply(415, Vec::new(), Vec::new());
        }
        let Ok(rp) = RpMessage::decode(body) else {
            return reply(400, Vec::new(), Vec::new());
        };
        match rp {
            RpMessage::Data(data) => {
                let (send, event) = self.submit(from, &data, scts);
                reply(202, send, vec![event])
            }
            RpMessage::Ack(ack) => {
                let (send, known) = self.delivered(from, ack.message_ref, ST_DELIVERED);
                let event = known.then(|| CentreEvent::Delivered {
                    to: from.to_owned(),
                    rp_mr: ack.message_ref,
                });
                reply(200, send, event.into_iter().collect())
            }
            RpMessage::Error(e) => {
                let (send, known) = self.delivered(from, e.message_ref, ST_REMOTE_ERROR);
                let event = known.then(|| CentreEvent::NotDelivered {
                    to: from.to_owned(),
                    rp_mr: e.message_ref,
                    cause: e.cause.value,
                });
                reply(200, send, event.into_iter().collect())
            }
            RpMessage::Smma { message_ref } => {
                let ack = RpMessage::Ack(RpAck {
                    direction: Direction::NetworkToMs,
                    message_ref,
                    user_data: None,
                });
                let send = ack
                    .encode()
                    .map(|body| {
                        vec![CentreSend {
                            to: from.to_owned(),
                            body,
                        }]
                    })
                    .unwrap_or_default();
                reply(200, send, Vec::new())
            }
        }
    }

    fn error_to(&self, to: &str, rp_mr: u8, cause: u8, scts: Timestamp) -> Vec<CentreSend> {
        let report = Tpdu::SubmitReport(SubmitReport {
            failure_cause: Some(0xFF),
            scts,
            pid: None,
            dcs: None,
            user_data: None,
        });
        let e = RpMessage::Error(RpError {
            direction: Direction::NetworkToMs,
            message_ref: rp_mr,
            cause: RpCause {
                value: cause,
                diagnostic: Vec::new(),
            },
            user_data: report.encode().ok(),
        });
        e.encode()
            .map(|body| {
                vec![CentreSend {
                    to: to.to_owned(),
                    body,
                }]
            })
            .unwrap_or_default()
    }

    fn submit(
        &mut self,
        from: &str,
        data: &RpData,
        scts: Timestamp,
    ) -> (Vec<CentreSend>, CentreEvent) {
        let rp_mr = data.message_ref;
        let refuse = |centre: &Self, to: Option<&str>, cause: u8| {
            let event = CentreEvent::Refused {
                from: from.to_owned(),
                to: to.map(str::to_owned),
                rp_mr,
                cause,
            };
            (centre.error_to(from, rp_mr, cause, scts), event)
        };
        let submit = match data.tpdu().map(|d| d.tpdu) {
            Ok(Tpdu::Submit(s)) => s,
            Ok(_) => return refuse(self, None, CAUSE_PROTOCOL_ERROR),
            Err(e) => return refuse(self, None, e.rp_cause()),
        };
        let to = submit.destination.number.as_str();
        let Some(sender_number) = self.by_impu.get(from).cloned() else {
            return refuse(self, Some(to), CAUSE_UNASSIGNED);
        };
        let Some(target) = self.by_number.get(to).cloned() else {
            return refuse(self, Some(to), CAUSE_UNASSIGNED);
        };
        let (part, parts) = submit
            .user_data
            .concat()
            .map_or((1, 1), |c| (c.seq, c.total));
        let event = CentreEvent::Submitted {
            from: sender_number.clone(),
            to: to.to_owned(),
            rp_mr,
            part,
            parts,
        };
        let report = Tpdu::SubmitReport(SubmitReport {
            failure_cause: None,
            scts,
            pid: None,
            dcs: None,
            user_data: None,
        });
        let ack = RpMessage::Ack(RpAck {
            direction: Direction::NetworkToMs,
            message_ref: rp_mr,
            user_data: report.encode().ok(),
        });
        let mut send = Vec::new();
        if let Ok(body) = ack.encode() {
            send.push(CentreSend {
                to: from.to_owned(),
                body,
            });
        }
        let mut deliver = Deliver::new(
            Address::international(&sender_number),
            scts,
            submit.user_data.clone(),
        );
        deliver.status_report_indication = submit.status_report_request;
        let mt_mr = self.rp_mr();
        if let Ok(body) = RpData::mt(mt_mr, self.address.clone(), &Tpdu::Deliver(deliver))
            .and_then(|d| RpMessage::Data(d).encode())
        {
            self.deliveries.insert(
                (target.clone(), mt_mr),
                Delivery {
                    sender: from.to_owned(),
                    tp_mr: submit.message_ref,
                    report: submit.status_report_request,
                    recipient: submit.destination.clone(),
                    scts,
                },
            );
            send.push(CentreSend { to: target, body });
        }
        (send, event)
    }

    /// The status report for a delivery `from` acknowledged (or refused),
    /// if its sender asked for one; and whether the delivery was ours.
    fn delivered(&mut self, from: &str, rp_mr: u8, status: u8) -> (Vec<CentreSend>, bool) {
        let Some(d) = self.deliveries.remove(&(from.to_owned(), rp_mr)) else {
            return (Vec::new(), false);
        };
        if !d.report {
            return (Vec::new(), true);
        }
        let report = Tpdu::StatusReport(StatusReport {
            more_messages_to_send: false,
            loop_prevention: false,
            status_report_qualifier: false,
            message_ref: d.tp_mr,
            recipient: d.recipient,
            scts: d.scts,
            discharge_time: d.scts,
            status,
            pid: None,
            dcs: None,
            user_data: None,
        });
        let mr = self.rp_mr();
        let send = RpData::mt(mr, self.address.clone(), &report)
            .and_then(|data| RpMessage::Data(data).encode())
            .map(|body| vec![CentreSend { to: d.sender, body }])
            .unwrap_or_default();
        (send, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "sip:alice@ims.example.org";
    const BOB: &str = "sip:bob@ims.example.org";

    fn scts() -> Timestamp {
        Timestamp {
            year: 26,
            month: 12,
            day: 5,
            hour: 4,
            minute: 0,
            second: 0,
            tz_quarters: 4,
        }
    }

    fn network() -> SmsCentre {
        let mut c = SmsCentre::new(Address::international("331000000"));
        c.subscriber("3361111111", ALICE);
        c.subscriber("3362222222", BOB);
        c
    }

    /// Runs the MO and MT flows between two UEs through the centre:
    /// returns what each side saw.
    fn exchange(text: &str, report: bool) -> (Vec<UeEvent>, Vec<UeEvent>) {
        let sc = Address::international("331000000");
        let (mut alice, mut bob, mut centre) = (SmsUe::new(sc.clone()), SmsUe::new(sc), network());
        let mut seen_alice = Vec::new();
        let mut seen_bob = Vec::new();
        let mut queue: Vec<(String, String, Vec<u8>)> = alice
            .submit(
                Address::international("3362222222"),
                text,
                report,
                Duration::ZERO,
            )
            .unwrap()
            .into_iter()
            .map(|o| (ALICE.to_owned(), "centre".to_owned(), o.body))
            .collect();
        while let Some((from, to, body)) = queue.pop() {
            if to == "centre" {
                let r = centre.on_message(&from, SMS_TYPE, &body, scts());
                assert!(r.status == 202 || r.status == 200, "{r:?}");
                queue.extend(
                    r.send
                        .into_iter()
                        .map(|s| ("centre".to_owned(), s.to, s.body)),
                );
            } else {
                let (ue, seen) = if to == ALICE {
                    (&mut alice, &mut seen_alice)
                } else {
                    (&mut bob, &mut seen_bob)
                };
                let r = ue.on_message(SMS_TYPE, &body);
                assert_eq!(r.status, 200);
                seen.extend(r.event);
                if let Some(o) = r.reply {
                    queue.push((to.clone(), "centre".to_owned(), o.body));
                }
            }
        }
        assert_eq!(alice.pending(), 0);
        (seen_alice, seen_bob)
    }

    #[test]
    fn mo_and_mt_with_a_status_report() {
        let (alice, bob) = exchange("salut", true);
        assert_eq!(
            bob,
            [UeEvent::Received {
                from: Address::international("3361111111"),
                text: "salut".into(),
                warning: None
            }]
        );
        assert!(alice.contains(&UeEvent::Submitted { rp_mr: 0, tp_mr: 0 }));
        assert!(alice.contains(&UeEvent::StatusReport {
            tp_mr: 0,
            recipient: Address::international("3362222222"),
            status: ST_DELIVERED
        }));
    }

    #[test]
    fn a_long_text_goes_in_parts_and_arrives_whole() {
        let text = "Ceci est un long message, € compris. ".repeat(12);
        let (alice, bob) = exchange(&text, false);
        let submitted = alice
            .iter()
            .filter(|e| matches!(e, UeEvent::Submitted { .. }))
            .count();
        assert!(submitted >= 3, "{alice:?}");
        assert_eq!(bob.len(), 1);
        assert!(matches!(&bob[0], UeEvent::Received { text: t, .. } if *t == text));
    }

    #[test]
    fn an_unknown_recipient_gets_rp_error_cause_1() {
        let mut alice = SmsUe::new(Address::international("331000000"));
        let mut centre = network();
        let o = alice
            .submit(
                Address::international("3369999999"),
                "hi",
                false,
                Duration::ZERO,
            )
            .unwrap();
        let r = centre.on_message(ALICE, SMS_TYPE, &o[0].body, scts());
        assert_eq!(r.status, 202);
        assert_eq!(r.send.len(), 1);
        assert_eq!(
            r.events,
            [CentreEvent::Refused {
                from: ALICE.into(),
                to: Some("3369999999".into()),
                rp_mr: 0,
                cause: CAUSE_UNASSIGNED
            }]
        );
        let got = alice.on_message(SMS_TYPE, &r.send[0].body);
        assert_eq!(
            got.event,
            Some(UeEvent::SubmitFailed {
                rp_mr: 0,
                cause: CAUSE_UNASSIGNED,
                tp_fcs: Some(0xFF)
            })
        );
    }

    #[test]
    fn the_centre_reports_each_part_submitted_and_delivered() {
        let sc = Address::international("331000000");
        let (mut alice, mut bob, mut centre) = (SmsUe::new(sc.clone()), SmsUe::new(sc), network());
        let text = "x".repeat(200);
        let parts = alice
            .submit(
                Address::international("3362222222"),
                &text,
                false,
                Duration::ZERO,
            )
            .unwrap();
        assert_eq!(parts.len(), 2);
        let r = centre.on_message(ALICE, SMS_TYPE, &parts[1].body, scts());
        assert_eq!(
            r.events,
            [CentreEvent::Submitted {
                from: "3361111111".into(),
                to: "3362222222".into(),
                rp_mr: 1,
                part: 2,
                parts: 2
            }]
        );
        // To alice the RP-ACK, to bob the SMS-DELIVER.
        let deliver = r.send.iter().find(|s| s.to == BOB).unwrap();
        let got = bob.on_message(SMS_TYPE, &deliver.body);
        let ack = centre.on_message(BOB, SMS_TYPE, &got.reply.unwrap().body, scts());
        assert_eq!(ack.status, 200);
        assert_eq!(
            ack.events,
            [CentreEvent::Delivered {
                to: BOB.into(),
                rp_mr: 0
            }]
        );
        // An RP-ACK nobody waits for is no delivery.
        let again = RpMessage::Ack(RpAck {
            direction: Direction::MsToNetwork,
            message_ref: 9,
            user_data: None,
        })
        .encode()
        .unwrap();
        assert!(
            centre
                .on_message(BOB, SMS_TYPE, &again, scts())
                .events
                .is_empty()
        );
        let _ = alice.on_message(SMS_TYPE, &r.send[0].body);
    }

    #[test]
    fn tr1m_fails_a_submit_without_answer() {
        let mut alice = SmsUe::new(Address::international("331000000"));
        alice
            .submit(
                Address::international("3362222222"),
                "hi",
                false,
                Duration::ZERO,
            )
            .unwrap();
        assert_eq!(alice.poll_timeout(), Some(TR1M));
        assert!(
            alice
                .handle_timeout(TR1M - Duration::from_secs(1))
                .is_empty()
        );
        assert_eq!(
            alice.handle_timeout(TR1M),
            [UeEvent::SubmitFailed {
                rp_mr: 0,
                cause: CAUSE_TEMPORARY_FAILURE,
                tp_fcs: None
            }]
        );
    }

    #[test]
    fn the_seed_mt_payload_is_delivered_with_a_warning() {
        let hex =
            "0100069133010000F0001E069133010000F0040A91331632547600000000000000000005F330BB4E07";
        let body: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let mut ue = SmsUe::new(Address::international("331000000"));
        let r = ue.on_message(SMS_TYPE, &body);
        assert_eq!(r.status, 200);
        assert!(matches!(
            r.event,
            Some(UeEvent::Received { ref text, warning: Some(_), .. }) if text == "salut"
        ));
        // The UE's RP-ACK names the same RP-MR.
        let RpMessage::Ack(ack) = RpMessage::decode(&r.reply.unwrap().body).unwrap() else {
            panic!()
        };
        assert_eq!(ack.message_ref, 0);
        // Not an SMS body.
        assert_eq!(ue.on_message("text/plain", &body).status, 415);
        assert_eq!(ue.on_message(SMS_TYPE, &[0x01]).status, 400);
    }
}
