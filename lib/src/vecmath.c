/* vecmath.c - exported scalar entry to the vector exp, for its accuracy test. */
#include "internal.h"
#include "vecmath.h"

float loss_expf_approx(float x)
{
  return loss__vexp(loss__v8f_splat(x))[0];
}

float loss_expf_neg_approx(float x)
{
  return loss__vexp_neg(loss__v8f_splat(x))[0];
}

float loss_logf_approx(float x)
{
  return loss__vlog(loss__v8f_splat(x))[0];
}

double loss_exp_approx(double x)
{
  loss__v4d v = {x, x, x, x};
  return loss__vexp_d(v)[0];
}

float loss_log1pf_unit_approx(float e)
{
  return loss__vlog1p_unit(loss__v8f_splat(e))[0];
}
