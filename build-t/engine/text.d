build-t/engine/text.o: engine/text.c include/text.h build-t/hans_table.h \
 include/kefu.h
include/text.h:
build-t/hans_table.h:
include/kefu.h:
