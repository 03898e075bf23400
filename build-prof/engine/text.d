build-prof/engine/text.o: engine/text.c include/text.h \
 build-prof/hans_table.h include/kefu.h
include/text.h:
build-prof/hans_table.h:
include/kefu.h:
