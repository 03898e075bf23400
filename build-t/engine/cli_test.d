build-t/engine/cli_test.o: engine/cli_test.c include/cli.h \
 engine/cli_int.h include/convtest.h include/dialog.h include/rules.h \
 include/text.h include/dialog.h include/kefu.h
include/cli.h:
engine/cli_int.h:
include/convtest.h:
include/dialog.h:
include/rules.h:
include/text.h:
include/dialog.h:
include/kefu.h:
