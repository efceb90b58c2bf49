; RFC 4465 section 2.3, assembly block 1, transcribed from the RFC text
; (page breaks and the 3-space indent removed). Its bytecode is in the
; Appendix A.1.3 messages of rfc4465-torture-tests.txt.

at (128)

SORT-DESCENDING (256, 2, 23)
SORT-ASCENDING (256, 2, 23)

OUTPUT (302, 45)
END-MESSAGE (0, 0, 0, 0, 0, 0, 0)

at (256)

word (10, 10, 17, 7, 22, 3, 3, 3, 19, 1, 16, 14, 8, 2, 13, 20, 18,
23, 15, 21, 12, 6, 9)

word (28263, 8297, 30057, 8308, 26996, 11296, 31087, 29991, 8275,
18031, 28263, 24864, 30066, 29284, 28448, 29807, 28206, 11776, 28773,
28704, 28276, 29285, 28265)
