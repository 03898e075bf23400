build-tsan/tests/test_jit.o: tests/test_jit.c include/kefu.h \
  include/log.h include/router.h include/rules.h

include/kefu.h:

include/log.h:

include/router.h:

include/rules.h:
