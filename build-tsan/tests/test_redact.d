build-tsan/tests/test_redact.o: tests/test_redact.c include/kefu.h \
  include/redact.h

include/kefu.h:

include/redact.h:
