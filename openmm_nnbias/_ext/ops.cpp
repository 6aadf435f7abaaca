// The fused CPU kernels of openmm_nnbias as TorchScript operators torch.ops.openmm_nnbias.<name>:
// one translation unit (the headers hold the kernels), compiled on first use by
// openmm_nnbias/_ext/__init__.py. Callable from Python, from scripted modules, and inside
// openmm-torch's TorchForce of the same process.
#include <torch/library.h>

#include "bias_torsions.h"
#include "envsim.h"
#include "sw.h"
#include "verlet.h"

TORCH_LIBRARY(openmm_nnbias, m) {
  m.def("verlet_build(Tensor positions, Tensor? box, float reach) -> (Tensor, Tensor)",
        &openmm_nnbias::verlet_build);
  m.def("verlet_stale(Tensor positions, Tensor? box, Tensor ref_positions, Tensor ref_box, "
        "Tensor image_bound, float skin) -> bool",
        &openmm_nnbias::verlet_stale);
  m.def("sw_energy_forces(Tensor positions, Tensor box, Tensor pairs, float cutoff, float A_eps, float B, "
        "float sigma, float p, float q, float gamma_sigma, float lam_eps, float cos0) -> (Tensor, Tensor)",
        &openmm_nnbias::sw_energy_forces);
  m.def("envsim(Tensor positions, Tensor? box, Tensor pairs, Tensor references, float sigma, float lam, "
        "float rc, float lcut, float r0, int nn, int mm, bool jacobian) -> (Tensor, Tensor, Tensor)",
        &openmm_nnbias::envsim_value_jacobian);
  m.def("envsim_switch(Tensor k, float r0, int nn, int mm) -> (Tensor, Tensor)", &openmm_nnbias::envsim_switch_op);
  m.def("bias_torsions(Tensor positions, Tensor? box, Tensor atoms, Tensor scale, Tensor flat, int[] widths, "
        "str activation) -> (Tensor, Tensor)",
        &openmm_nnbias::bias_torsions);
}
