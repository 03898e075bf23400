build-t/engine/cli_erase.o: engine/cli_erase.c include/cli.h \
 engine/cli_int.h include/kefu.h include/store.h include/text.h
include/cli.h:
engine/cli_int.h:
include/kefu.h:
include/store.h:
include/text.h:
