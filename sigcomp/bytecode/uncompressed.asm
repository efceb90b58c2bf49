; The well-known uncompressed bytecode of RFC 4896 §11, as printed there:
; it outputs the rest of the message as is, one byte at a time, and ends
; without state or feedback. sigcomp::compress sends a message in this
; literal form (Kind::Literal) when it must travel as SigComp but would not
; compress: over a stream, where plain SIP may not be mixed with SigComp
; (RFC 5049 §5), or to carry a returned feedback item (RFC 3320 §7.1) that
; a plain message would drop. An empty input outputs nothing: no message,
; only the header's returned feedback item (RFC 3320 §9.4.8).

at (0)
:udvm_memory_size         pad (2)
:cycles_per_bit           pad (2)
:sigcomp_version          pad (2)
:partial_state_id_length  pad (2)
:state_length             pad (2)
:reserved                 pad (2)
at (64)
:byte_copy_left           pad (2)
:byte_copy_right          pad (2)
:input_bit_order          pad (2)
:stack_location           pad (2)

; Simple loop
;       Read a byte
;       Output a byte
; Until there are no more bytes!

at (128)
:start
INPUT-BYTES (1, byte_copy_left, end)
OUTPUT (byte_copy_left, 1)
JUMP (start)

:end
END-MESSAGE (0,0,0,0,0,0,0)
