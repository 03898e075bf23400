build-t/engine/redact.o: engine/redact.c include/redact.h include/kefu.h
include/redact.h:
include/kefu.h:
