build-tsan/tests/test_queue.o: tests/test_queue.c include/kefu.h \
  include/queue.h

include/kefu.h:

include/queue.h:
