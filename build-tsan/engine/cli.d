build-tsan/engine/cli.o: engine/cli.c include/cli.h engine/cli_int.h \
  include/decide.h include/kb.h include/rules.h include/router.h \
  include/eval.h include/kefu.h include/serve.h include/store.h \
  include/text.h

include/cli.h:

engine/cli_int.h:

include/decide.h:

include/kb.h:

include/rules.h:

include/router.h:

include/eval.h:

include/kefu.h:

include/serve.h:

include/store.h:

include/text.h:
