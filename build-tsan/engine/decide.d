build-tsan/engine/decide.o: engine/decide.c include/decide.h include/kb.h \
  include/rules.h include/router.h include/kefu.h include/text.h

include/decide.h:

include/kb.h:

include/rules.h:

include/router.h:

include/kefu.h:

include/text.h:
