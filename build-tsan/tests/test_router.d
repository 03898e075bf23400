build-tsan/tests/test_router.o: tests/test_router.c include/kefu.h \
  include/router.h include/rules.h

include/kefu.h:

include/router.h:

include/rules.h:
