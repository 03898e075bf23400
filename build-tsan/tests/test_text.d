build-tsan/tests/test_text.o: tests/test_text.c build-tsan/hans_table.h \
  include/kefu.h include/text.h

build-tsan/hans_table.h:

include/kefu.h:

include/text.h:
