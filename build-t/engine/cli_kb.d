build-t/engine/cli_kb.o: engine/cli_kb.c include/cli.h engine/cli_int.h \
 include/kb.h include/rules.h include/kefu.h include/rules.h \
 include/text.h
include/cli.h:
engine/cli_int.h:
include/kb.h:
include/rules.h:
include/kefu.h:
include/rules.h:
include/text.h:
