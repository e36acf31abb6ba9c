// RUN: moma-opt %s -verify-diagnostics --convert-moma-to-linalg=target=sm_75

// The target whose cost model sizes the fused LM head's chunks must be one
// the kernel layer knows.
// expected-error @below {{convert-moma-to-linalg: unknown target 'sm_75' (expected x86-64-v3, x86-64-v4, sm_80, sm_90 or sm_90a)}}
module {
  func.func @f() {
    return
  }
}
