build-tsan/engine/text.o: engine/text.c include/text.h \
  build-tsan/hans_table.h include/kefu.h

include/text.h:

build-tsan/hans_table.h:

include/kefu.h:
