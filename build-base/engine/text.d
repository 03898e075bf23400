build-base/engine/text.o: engine/text.c include/text.h \
 build-base/hans_table.h include/kefu.h
include/text.h:
build-base/hans_table.h:
include/kefu.h:
