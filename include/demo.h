/* demo.h — the bundled shop's stand-in systems (demo_orders.c). */
#ifndef KEFU_DEMO_H
#define KEFU_DEMO_H

/* kefu demo-orders [--listen 127.0.0.1:PORT]: serves the demo order system
 * until SIGTERM or SIGINT. Returns the exit status. */
int demo_orders_main(int argc, char **argv);

#endif
