// RUN: moma-opt %s -split-input-file -verify-diagnostics --moma-kernel-plan=target=sm_75

// A target the cost model has no figures for is an error, not a default.
// expected-error @below {{moma-kernel-plan: unknown target 'sm_75' (expected x86-64-v3, x86-64-v4, sm_80, sm_90 or sm_90a)}}
module {
  func.func @f() {
    return
  }
}
