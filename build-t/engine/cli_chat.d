build-t/engine/cli_chat.o: engine/cli_chat.c include/cli.h \
 engine/cli_int.h include/dialog.h include/rules.h include/text.h \
 include/kefu.h
include/cli.h:
engine/cli_int.h:
include/dialog.h:
include/rules.h:
include/text.h:
include/kefu.h:
