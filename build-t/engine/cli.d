build-t/engine/cli.o: engine/cli.c include/cli.h engine/cli_int.h \
 include/decide.h include/classify.h include/rules.h include/kb.h \
 include/router.h include/eval.h include/decide.h include/kb.h \
 include/kefu.h include/router.h include/rules.h include/serve.h \
 include/store.h include/text.h
include/cli.h:
engine/cli_int.h:
include/decide.h:
include/classify.h:
include/rules.h:
include/kb.h:
include/router.h:
include/eval.h:
include/decide.h:
include/kb.h:
include/kefu.h:
include/router.h:
include/rules.h:
include/serve.h:
include/store.h:
include/text.h:
