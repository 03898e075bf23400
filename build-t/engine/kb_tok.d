build-t/engine/kb_tok.o: engine/kb_tok.c engine/kb_int.h include/rules.h \
 include/text.h include/kefu.h
engine/kb_int.h:
include/rules.h:
include/text.h:
include/kefu.h:
