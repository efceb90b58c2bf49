; The literal form of sigcomp::compress when it must also announce (RFC
; 3320 §9.4.9 returned SigComp parameters, sent until acknowledged) and so
; request feedback: the loop of RFC 4896 §11 (sigcomp/bytecode/
; uncompressed.asm) behind a 6-byte header that says where END-MESSAGE
; finds the requested feedback and the returned parameters.
;
; Input (RFC 3320 §7, after the header):
;   fb_loc   2 bytes  requested_feedback_location for END-MESSAGE (0: none;
;                     else `blob`, holding Q=1 and a 1-byte item, RFC 3320
;                     Figure 12)
;   rp_loc   2 bytes  returned_parameters_location (0: none)
;   n        2 bytes  length of the blob (at most 56)
;   blob     n bytes  copied to `blob`: the requested feedback, then the
;                     returned parameters (RFC 3320 Figure 13)
;   message           output as is
;
; A message too short for its 6-byte header or its blob fails: the jump
; target is the zero byte after END-MESSAGE (DECOMPRESSION-FAILURE; zero
; bytes at the end are not uploaded, RFC 4464 §3.3).

at (32)
:fb_loc             pad (2)
:rp_loc             pad (2)
:n                  pad (2)
at (72)
:blob               pad (56)

at (128)
readonly (1)
INPUT-BYTES (6, fb_loc, fail)
INPUT-BYTES ($n, blob, fail)
:copy
; Address 0 (UDVM_memory_size, information only) is the one-byte buffer.
INPUT-BYTES (1, 0, done)
OUTPUT (0, 1)
JUMP (copy)
:done
END-MESSAGE ($fb_loc, $rp_loc, 0, 0, 0, 0, 0)
:fail
DECOMPRESSION-FAILURE
