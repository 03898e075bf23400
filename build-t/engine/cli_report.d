build-t/engine/cli_report.o: engine/cli_report.c include/cli.h \
 engine/cli_int.h include/kefu.h include/store.h include/text.h
include/cli.h:
engine/cli_int.h:
include/kefu.h:
include/store.h:
include/text.h:
