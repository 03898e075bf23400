build-tsan/tests/test_rules.o: tests/test_rules.c include/kefu.h \
  include/rules.h

include/kefu.h:

include/rules.h:
