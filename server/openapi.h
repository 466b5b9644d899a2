/* openapi.h - the OpenAPI document from the loss descriptors. */
#ifndef LOSSD_OPENAPI_H
#define LOSSD_OPENAPI_H

#include "codec.h"

void openapi_write(sb_t *s);

#endif
