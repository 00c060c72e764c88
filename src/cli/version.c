/* version.c - the version, from the repository's one VERSION file (the
 * Makefile passes it as PF_VERSION to this file alone). */
#include "cli/cli.h"

#ifndef PF_VERSION
#error "PF_VERSION must be defined (the Makefile reads VERSION)"
#endif

const char cli_version[] = PF_VERSION;
