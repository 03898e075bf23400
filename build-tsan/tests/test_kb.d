build-tsan/tests/test_kb.o: tests/test_kb.c tests/../engine/kb_int.h \
  include/rules.h include/text.h include/kb.h include/kefu.h

tests/../engine/kb_int.h:

include/rules.h:

include/text.h:

include/kb.h:

include/kefu.h:
