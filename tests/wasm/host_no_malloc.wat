;; An ABI 0.2.1 module without an allocator (neither malloc nor proxy_on_memory_allocate).
(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize")))
