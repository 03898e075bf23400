build-t/engine/kb_parse.o: engine/kb_parse.c engine/kb_int.h \
 include/rules.h include/text.h include/kefu.h
engine/kb_int.h:
include/rules.h:
include/text.h:
include/kefu.h:
