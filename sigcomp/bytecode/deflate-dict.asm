; SigComp decompressor bytecode for our compressor (sigcomp::compress).
;
; A DEFLATE (RFC 1951 §3.2.6 fixed Huffman codes) decoder whose history is
; the circular buffer, preloaded with STATE-ACCESS from states the
; compressor names: slices of the RFC 3485 SIP/SDP and RFC 5112 presence
; dictionaries and earlier messages of the compartment. Written for
; sigcomp::asm (RFC 4464 §3); sigcomp/src/compress/bytecode.rs assembles
; it at build time of the tests and checks it against the embedded bytes.
;
; Input (RFC 3320 §7, after the header):
;   seq      2 bytes  bit 15 = an announcement follows; bits 0-14 = the
;                     message's sequence number, used as the
;                     state_retention_priority of the message state and
;                     (low 7 bits) as the requested feedback item. 0 = make
;                     no state and request no feedback.
;   count    1 byte   number of preload entries
;   [alen    1 byte   if bit 15 of seq: length of the returned SigComp
;    params  alen     parameters (RFC 3320 Figure 13) to announce]
;   count x  10 bytes partial state id (6), state_begin (2), state_length (2):
;                     appended to the history in this order
;   DEFLATE  bits     fixed-Huffman symbols, no block header and no
;                     end-of-block: the message ends when the input holds
;                     no complete code (the compressor pads with 1 bits,
;                     a prefix of a 9-bit code). Lengths 3..257 (code 285
;                     is never sent), distances 1..(buffer size - 1).
;
; The preload never wraps (the compressor keeps it below the buffer size);
; the message may wrap around the end of memory into the oldest preload
; (byte copying rules, RFC 3320 §8.4), as long as it is shorter than the
; buffer and its matches reach back less than the buffer size. It is
; output in one OUTPUT and saved as the message state (address mstart,
; instruction 0, minimum_access_length 6, priority seq). A message longer
; than the buffer is output in parts (symbol 286, see flush) and creates no
; state (seq 0). The first message also saves the
; code itself (priority 65534, kept longest) so that later messages name it
; with a 6-byte partial state id instead of uploading it.
;
; Our UDVM runs the loop from next_symbol natively while memory holds
; exactly this code (sigcomp/src/udvm/native.rs), with the same effects;
; it relies on the labels next_symbol, literal, flush, copy_match, finish
; and fail, whose addresses sigcomp/src/compress/bytecode.rs keeps.

at (32)
:seq                pad (2)
:count              pad (2)
:ptr                pad (2)
:mstart             pad (2)
:index              pad (2)
:val                pad (2)
:len                pad (2)
:tmp                pad (2)
:fb                 pad (2)
:rp                 pad (2)
:alen               pad (2)
:ostart             pad (2)
at (64)
:byte_copy_left     pad (2)
:byte_copy_right    pad (2)
:input_bit_order    pad (2)
:stack_location     pad (2)
:entry              pad (6)
:entry_begin        pad (2)
:entry_length       pad (2)
:params             pad (40)

at (128)
readonly (1)
:upload_entry
; RFC 3320 §9.4.6: the code as a state, so later messages skip the upload.
STATE-CREATE ((code_end - upload_entry), upload_entry, state_entry, 6, 65534)
:state_entry
; P=1 (bits LSB first from each byte), H=0 (Huffman codes MSB first),
; F=1 (extra bits LSB first): the DEFLATE bit order (RFC 1951 §3.1.1).
MULTILOAD (64, 3, code_end, $0, 5)
INPUT-BYTES (3, seq, fail)
COMPARE ($seq, 32768, preload, announce, announce)
:announce
SUBTRACT ($seq, 32768)
INPUT-BYTES (1, (alen + 1), fail)
INPUT-BYTES ($alen, params, fail)
LOAD (rp, params)
:preload
LOAD (ptr, code_end)
:preload_next
COMPARE ($count, 0, fail, decode, preload_one)
:preload_one
INPUT-BYTES (10, entry, fail)
STATE-ACCESS (entry, 6, $entry_begin, $entry_length, $ptr, 0)
ADD ($ptr, $entry_length)
SUBTRACT ($count, 256)
JUMP (preload_next)

:decode
LOAD (mstart, $ptr)
LOAD (ostart, $ptr)
:next_symbol
; RFC 1951 §3.2.6: literal/length codes 256-279 (7 bits), 0-143 and
; 280-287 (8 bits), 144-255 (9 bits); the value is the symbol.
INPUT-HUFFMAN (index, finish, 4,
    7, 0, 23, 256,
    1, 48, 191, 0,
    0, 192, 199, 280,
    1, 400, 511, 144)
COMPARE ($index, 256, literal, finish, match)
:literal
COPY-LITERAL ((index + 1), 1, $ptr)
JUMP (next_symbol)

:match
COMPARE ($index, 286, length, flush, flush)
:flush
; Symbol 286 (never a length in RFC 1951) + 16 bits n: output the n bytes
; decoded since the last output, before the message overwrites them.
INPUT-BITS (16, len, fail)
OUTPUT ($ostart, $len)
LOAD (ostart, $ptr)
JUMP (next_symbol)
:length
; t = symbol - 257; t < 8: length t + 3; else
; ((4 + t % 4) << (t / 4 - 1)) + extra + 3 (RFC 1951 §3.2.5).
SUBTRACT ($index, 257)
LOAD (val, $index)
COMPARE ($index, 8, length_done, length_extra, length_extra)
:length_extra
REMAINDER ($val, 4)
ADD ($val, 4)
DIVIDE ($index, 4)
SUBTRACT ($index, 1)
LSHIFT ($val, $index)
INPUT-BITS ($index, tmp, fail)
ADD ($val, $tmp)
:length_done
ADD ($val, 3)
LOAD (len, $val)
; distance code d (5 bits): d < 4: d + 1; else
; ((2 + d % 2) << (d / 2 - 1)) + extra + 1.
INPUT-HUFFMAN (index, fail, 1, 5, 0, 31, 0)
LOAD (val, $index)
COMPARE ($index, 4, distance_done, distance_extra, distance_extra)
:distance_extra
REMAINDER ($val, 2)
ADD ($val, 2)
DIVIDE ($index, 2)
SUBTRACT ($index, 1)
LSHIFT ($val, $index)
INPUT-BITS ($index, tmp, fail)
ADD ($val, $tmp)
:distance_done
ADD ($val, 1)
:copy_match
COPY-OFFSET ($val, $len, $ptr)
JUMP (next_symbol)

:finish
LOAD (len, $ptr)
SUBTRACT ($len, $ostart)
; The rest wrapped around the end of memory (ptr < ostart): add the
; buffer's size, UDVM_memory_size (address 0) - code_end.
COMPARE ($ptr, $ostart, wrapped, output, output)
:wrapped
ADD ($len, $0)
SUBTRACT ($len, code_end)
:output
OUTPUT ($ostart, $len)
COMPARE ($seq, 0, fail, stateless, stateful)
:stateful
; RFC 3320 §9.4.9 Figure 12: Q = 1, a 1-byte requested feedback item.
LOAD (fb, $seq)
AND ($fb, 127)
OR ($fb, 1024)
END-MESSAGE (fb, $rp, $len, $mstart, 0, 6, $seq)
:stateless
END-MESSAGE (0, $rp, 0, 0, 0, 0, 0)
:fail
DECOMPRESSION-FAILURE
:code_end
