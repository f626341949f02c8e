// Memory for the one asynchronous operation of a kind (a read, a write) that an object has in
// flight at a time, kept inside the object.
//
// asio allocates every operation it starts (the handler, the buffers, the executor's work) and
// recycles the blocks through a small per-thread cache. A worker with many connections completes
// a whole batch of reads before it starts the next ones, so the cache overflowed and each read
// and each write went to malloc and free (several times a request, in profiles). With its own
// block, a connection's next read reuses the memory its last one just gave back: asio frees an
// operation's memory before it calls the handler, which starts the next.
//
// Usage: asio::bind_allocator(HandlerAllocator<void>(memory_), handler). An operation larger
// than the block, or one started while the block is taken, gets ordinary heap memory.
#pragma once

#include <cstddef>
#include <new>

namespace sluice::net {

class HandlerMemory {
 public:
  // Room for the largest of them (asio 1.22, measured): a TLS read or write, 400 bytes; a
  // plain socket's are smaller.
  static constexpr size_t kSize = 512;

  HandlerMemory() = default;
  HandlerMemory(const HandlerMemory&) = delete;
  HandlerMemory& operator=(const HandlerMemory&) = delete;

  void* allocate(size_t size) {
    if (!in_use_ && size <= kSize) {
      in_use_ = true;
      return storage_;
    }
    ++heap_allocations_;
    return ::operator new(size);
  }

  void deallocate(void* p) {
    if (p == storage_) {
      in_use_ = false;
    } else {
      ::operator delete(p);
    }
  }

  // Operations that did not fit (tests check that the usual ones do).
  size_t heap_allocations() const { return heap_allocations_; }

 private:
  alignas(std::max_align_t) unsigned char storage_[kSize];
  bool in_use_ = false;
  size_t heap_allocations_ = 0;
};

// The allocator asio finds through bind_allocator; every rebound copy shares the memory.
template <typename T>
class HandlerAllocator {
 public:
  using value_type = T;

  explicit HandlerAllocator(HandlerMemory& memory) : memory_(&memory) {}
  template <typename U>
  HandlerAllocator(const HandlerAllocator<U>& other) : memory_(other.memory_) {}

  T* allocate(size_t n) { return static_cast<T*>(memory_->allocate(sizeof(T) * n)); }
  void deallocate(T* p, size_t) { memory_->deallocate(p); }

  template <typename U>
  bool operator==(const HandlerAllocator<U>& other) const {
    return memory_ == other.memory_;
  }
  template <typename U>
  bool operator!=(const HandlerAllocator<U>& other) const {
    return memory_ != other.memory_;
  }

 private:
  template <typename>
  friend class HandlerAllocator;
  HandlerMemory* memory_;
};

}  // namespace sluice::net
