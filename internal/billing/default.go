package billing

// DefaultBook is the book a server without --price-book rates with: the
// list prices of docs/spec.md section 10 (USD 0.0000077 a vCPU-second,
// 0.00000096 a GiB-second), from the Unix epoch; GPUs and extra storage
// free until the operator's book prices them.
const DefaultBook = `currency: USD
periods:
  - from: 1970-01-01
    vcpu: 0.0000077
    memory: 0.00000096
`
