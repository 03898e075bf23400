build-tsan/tests/test_decide.o: tests/test_decide.c include/decide.h \
  include/kb.h include/rules.h include/router.h include/kefu.h

include/decide.h:

include/kb.h:

include/rules.h:

include/router.h:

include/kefu.h:
