// VectorIndex implementation: an hnswlib graph for large projects, a contiguous exact store for
// small ones and for selective filters, and the checked on-disk format of
// docs/format/VECTOR_INDEX.md.
//
// Both structures hold every live vector. The exact store is what makes small projects and
// narrow filters exact and fast (one linear pass over a dense matrix); the graph is kept up to
// date all the time so that crossing `exact_search_below` never triggers a long rebuild under
// the exclusive lock. hnswlib 0.6.2 never frees a deleted element: removed labels stay in the
// graph, marked deleted, until the index is rebuilt from the database.
#include "index/vector_index.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/crypto_util.h"
#include "common/file_util.h"

// hnswlib 0.6.2's prefetch hints (its USE_SSE paths) read one link past the end of a link list,
// a known upstream bug that is harmless in practice (the read stays inside glibc heap chunks and
// only feeds a prefetch). Sanitizer builds turn those paths off so ASan reports our bugs, not
// that one; distances do not depend on it (UnitInnerProductSpace below supplies its own kernel).
#if defined(__SANITIZE_ADDRESS__)
#define NO_MANUAL_VECTORIZATION
#endif
#include "hnswlib.h"
#include "index/dot_product.h"
#include "index/rw_lock.h"

namespace kb {
namespace {

// On-disk constants; the layout they describe is docs/format/VECTOR_INDEX.md.
constexpr char kManifestName[] = "VECTOR_INDEX";
constexpr char kManifestMagic[8] = {'K', 'B', 'V', 'E', 'C', 'I', 'D', 'X'};
constexpr uint32_t kManifestVersion = 1;
constexpr size_t kManifestFixedBytes = 92;  // everything before the graph file name
constexpr size_t kManifestMinBytes = kManifestFixedBytes + 32;
constexpr size_t kMaxGraphNameLen = 255;
constexpr int kMaxDimension = 65536;

// Capacity of a new graph; it doubles as vectors arrive (hnswlib's resizeIndex).
constexpr size_t kInitialCapacity = 1024;
// Batches at least this large are inserted into the graph by several threads.
constexpr size_t kParallelInsertMin = 8;
constexpr size_t kMaxInsertThreads = 4;
// A filtered HNSW search widens its candidate list by this factor per round...
constexpr size_t kFilterWidenFactor = 4;
// ...until the list would cover more than 1/kFilterExactFraction of the index; past that the
// filter is selective enough that one exact pass over the accepted rows is cheaper.
constexpr size_t kFilterExactFraction = 8;
// Upserted vectors whose norm is this far from 1 are normalised (callers may pass raw vectors).
constexpr double kNormTolerance = 1e-3;

using Graph = hnswlib::HierarchicalNSW<float>;

// Inner-product "distance" 1 - a.b over unit vectors, using the runtime-selected dot kernel
// (Debian's hnswlib is compiled into our baseline build, so its own kernels stop at SSE).
class UnitInnerProductSpace final : public hnswlib::SpaceInterface<float> {
 public:
  explicit UnitInnerProductSpace(size_t dim) : dim_(dim) {}
  size_t get_data_size() override { return dim_ * sizeof(float); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return &Distance; }
  void* get_dist_func_param() override { return &dim_; }

 private:
  static float Distance(const void* a, const void* b, const void* param) {
    static const index_internal::DotProductFn dot = index_internal::BestDotProduct();
    return 1.0f - dot(static_cast<const float*>(a), static_cast<const float*>(b),
                      *static_cast<const size_t*>(param));
  }
  size_t dim_;
};

// Orders hits best first: higher score, then lower label (so ties are deterministic).
bool Better(const VectorHit& a, const VectorHit& b) {
  return a.score > b.score || (a.score == b.score && a.label < b.label);
}

void PutU16(std::string* out, uint16_t v) {
  for (int i = 0; i < 2; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t GetLE(const std::string& in, size_t offset, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) {
    v = (v << 8) | static_cast<uint8_t>(in[offset + i]);
  }
  return v;
}

bool ValidGraphName(const std::string& name) {
  if (name.empty() || name.size() > kMaxGraphNameLen || name == "." || name == "..") return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

struct Manifest {
  uint32_t dimension = 0;
  uint32_t m = 0;
  uint32_t ef_construction = 0;
  int64_t lsn = 0;
  uint64_t live_count = 0;
  uint64_t graph_elements = 0;
  uint64_t graph_size = 0;
  std::string graph_sha256;  // 32 raw bytes
  std::string graph_name;
};

std::string EncodeManifest(const Manifest& m) {
  std::string out(kManifestMagic, sizeof(kManifestMagic));
  PutU32(&out, kManifestVersion);
  PutU32(&out, m.dimension);
  PutU32(&out, m.m);
  PutU32(&out, m.ef_construction);
  PutU64(&out, static_cast<uint64_t>(m.lsn));
  PutU64(&out, m.live_count);
  PutU64(&out, m.graph_elements);
  PutU64(&out, m.graph_size);
  out += m.graph_sha256;
  PutU16(&out, static_cast<uint16_t>(m.graph_name.size()));
  PutU16(&out, 0);
  out += m.graph_name;
  Sha256Digest self = Sha256(out);
  out.append(reinterpret_cast<const char*>(self.data()), self.size());
  return out;
}

Result<Manifest> DecodeManifest(const std::string& data, const std::string& path) {
  auto corrupt = [&](const std::string& why) {
    return Status::Corruption("vector index manifest " + path + ": " + why);
  };
  if (data.size() < kManifestMinBytes) return corrupt("truncated");
  if (std::memcmp(data.data(), kManifestMagic, sizeof(kManifestMagic)) != 0) {
    return corrupt("bad magic");
  }
  size_t name_len = GetLE(data, 88, 2);
  if (data.size() != kManifestMinBytes + name_len) return corrupt("truncated or wrong size");
  size_t body = kManifestFixedBytes + name_len;
  Sha256Digest self = Sha256(std::string_view(data).substr(0, body));
  if (std::memcmp(self.data(), data.data() + body, self.size()) != 0) {
    return corrupt("checksum mismatch");
  }
  uint32_t version = static_cast<uint32_t>(GetLE(data, 8, 4));
  if (version != kManifestVersion) {
    return corrupt("unsupported format version " + std::to_string(version));
  }
  Manifest m;
  m.dimension = static_cast<uint32_t>(GetLE(data, 12, 4));
  m.m = static_cast<uint32_t>(GetLE(data, 16, 4));
  m.ef_construction = static_cast<uint32_t>(GetLE(data, 20, 4));
  m.lsn = static_cast<int64_t>(GetLE(data, 24, 8));
  m.live_count = GetLE(data, 32, 8);
  m.graph_elements = GetLE(data, 40, 8);
  m.graph_size = GetLE(data, 48, 8);
  m.graph_sha256 = data.substr(56, 32);
  m.graph_name = data.substr(kManifestFixedBytes, name_len);
  if (!ValidGraphName(m.graph_name)) return corrupt("invalid graph file name");
  if (m.m < 2 || m.m > 10000) return corrupt("invalid M " + std::to_string(m.m));
  if (m.live_count > m.graph_elements) return corrupt("live count exceeds graph elements");
  return m;
}

// SHA-256 and size of a file, read through a private read-only mapping (the graph file can be
// hundreds of megabytes; the mapping avoids a second copy in memory).
Result<std::pair<uint64_t, Sha256Digest>> HashFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::Corruption("vector index graph file missing: " + path);
    return Status::IOError("open " + path + ": " + std::strerror(errno));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Status::IOError("stat " + path + ": " + std::strerror(err));
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return std::make_pair(size, Sha256(std::string_view()));
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (map == MAP_FAILED) return Status::IOError("mmap " + path + ": " + std::strerror(err));
  ::madvise(map, size, MADV_SEQUENTIAL);
  Sha256Digest digest = Sha256(std::string_view(static_cast<const char*>(map), size));
  ::munmap(map, size);
  return std::make_pair(size, digest);
}

// The size hnswlib 0.6.2's saveIndex produces for `g` (its writer does not report errors, so
// a short write is caught by comparing against this).
uint64_t ExpectedGraphFileSize(const Graph& g) {
  uint64_t size = 8 * 6 + 4 + 4 + 8 * 3 + 8 + 8;  // the header fields, see saveIndex
  size += g.cur_element_count * g.size_data_per_element_;
  for (size_t i = 0; i < g.cur_element_count; ++i) {
    size += 4 + static_cast<uint64_t>(g.size_links_per_element_) *
                    static_cast<uint64_t>(std::max(0, g.element_levels_[i]));
  }
  return size;
}

class HnswVectorIndex final : public VectorIndex {
 public:
  explicit HnswVectorIndex(const VectorIndexOptions& options)
      : options_(Sanitize(options)),
        dim_(static_cast<size_t>(options_.dimension)),
        space_(dim_),
        dot_(index_internal::BestDotProduct()) {}

  // A new, empty graph. hnswlib throws only on allocation failure here.
  void InitEmptyGraph() EXCLUDES(mu_) {
    index_internal::WriterLock lock(mu_);  // uncontended: Create() has not returned the index yet
    graph_ = std::make_unique<Graph>(&space_, kInitialCapacity, static_cast<size_t>(options_.m),
                                     static_cast<size_t>(options_.ef_construction));
    graph_->setEf(static_cast<size_t>(options_.ef_search));
  }

  static Result<std::unique_ptr<VectorIndex>> LoadFrom(const std::string& dir,
                                                       const VectorIndexOptions& options);

  Status Save(const std::string& dir, int64_t lsn) override;
  Status Upsert(int64_t label, std::span<const float> vector) override;
  Status UpsertBatch(const std::vector<int64_t>& labels,
                     const std::vector<std::vector<float>>& vectors) override;
  void Remove(int64_t label) override;
  bool Contains(int64_t label) const override {
    index_internal::ReaderLock lock(mu_);
    return row_of_.count(label) != 0;
  }
  std::vector<VectorHit> Search(std::span<const float> query, size_t k,
                                const std::function<bool(int64_t)>& accept) const override;
  std::vector<VectorHit> SearchExact(std::span<const float> query, size_t k,
                                     const std::function<bool(int64_t)>& accept) const override {
    index_internal::ReaderLock lock(mu_);
    if (query.size() != dim_) return {};
    return ExactLocked(query.data(), k, accept);
  }
  size_t Size() const override {
    index_internal::ReaderLock lock(mu_);
    return row_labels_.size();
  }
  int64_t lsn() const override { return lsn_.load(); }
  void set_lsn(int64_t lsn) override { lsn_.store(lsn); }
  int dimension() const override { return options_.dimension; }
  size_t MemoryBytes() const override;
  std::vector<int64_t> Labels() const override {
    index_internal::ReaderLock lock(mu_);
    std::vector<int64_t> labels = row_labels_;
    std::sort(labels.begin(), labels.end());
    return labels;
  }

 private:
  // Create() cannot fail, so impossible settings are clamped to the nearest usable ones
  // (a dimension below 1 yields an index that refuses every vector).
  static VectorIndexOptions Sanitize(VectorIndexOptions o) {
    o.dimension = std::clamp(o.dimension, 1, kMaxDimension);
    o.m = std::clamp(o.m, 2, 10000);
    o.ef_construction = std::max(o.ef_construction, o.m);
    o.ef_search = std::max(o.ef_search, 1);
    return o;
  }

  std::vector<VectorHit> ExactLocked(const float* query, size_t k,
                                     const std::function<bool(int64_t)>& accept) const
      REQUIRES_SHARED(mu_);
  std::vector<VectorHit> GraphLocked(const float* query, size_t k,
                                     const std::function<bool(int64_t)>& accept) const
      REQUIRES_SHARED(mu_);
  void PutRowLocked(int64_t label, const float* vec) REQUIRES(mu_);
  Status Prepare(int64_t label, std::span<const float> vector, std::vector<float>* unit,
                 const float** data) const;
  Status ReserveLocked(size_t additional) REQUIRES(mu_);
  Status AddToGraphLocked(int64_t label, const float* data) REQUIRES(mu_);
  void EraseRowLocked(int64_t label) REQUIRES(mu_);

  const VectorIndexOptions options_;
  const size_t dim_;
  UnitInnerProductSpace space_;  // must outlive graph_, which points into it
  const index_internal::DotProductFn dot_;

  // Serialises Save(): its cleanup must not delete a concurrent save's file. Taken before mu_.
  Mutex save_mu_ ACQUIRED_BEFORE(mu_);
  mutable index_internal::RwLock mu_;  // writer-preferring, see rw_lock.h
  // The graph pointer and the graph behind it: hnswlib's own per-node locks only make addPoint
  // of distinct labels safe among themselves, never against a search or a resize.
  std::unique_ptr<Graph> graph_ GUARDED_BY(mu_) PT_GUARDED_BY(mu_);
  std::vector<float> rows_ GUARDED_BY(mu_);                     // live vectors, row-major
  std::vector<int64_t> row_labels_ GUARDED_BY(mu_);             // label of each row
  std::unordered_map<int64_t, size_t> row_of_ GUARDED_BY(mu_);  // label -> row
  std::atomic<int64_t> lsn_{0};
};

void HnswVectorIndex::PutRowLocked(int64_t label, const float* vec) {
  auto it = row_of_.find(label);
  if (it != row_of_.end()) {
    std::memcpy(rows_.data() + it->second * dim_, vec, dim_ * sizeof(float));
    return;
  }
  row_of_.emplace(label, row_labels_.size());
  row_labels_.push_back(label);
  rows_.insert(rows_.end(), vec, vec + dim_);
}

void HnswVectorIndex::EraseRowLocked(int64_t label) {
  auto it = row_of_.find(label);
  if (it == row_of_.end()) return;
  // Swap-remove keeps the matrix dense; the moved row's map entry is updated.
  size_t row = it->second;
  size_t last = row_labels_.size() - 1;
  if (row != last) {
    std::memcpy(rows_.data() + row * dim_, rows_.data() + last * dim_, dim_ * sizeof(float));
    row_labels_[row] = row_labels_[last];
    row_of_[row_labels_[row]] = row;
  }
  row_labels_.pop_back();
  rows_.resize(last * dim_);
  row_of_.erase(it);
}

// Checks a vector and returns its unit-length form (a copy only when it needed scaling).
Status HnswVectorIndex::Prepare(int64_t label, std::span<const float> vector,
                                std::vector<float>* unit, const float** data) const {
  if (label < 0) return Status::InvalidArgument("vector label must be >= 0");
  if (vector.size() != dim_) {
    return Status::InvalidArgument("vector has dimension " + std::to_string(vector.size()) +
                                   ", index has " + std::to_string(dim_));
  }
  double norm2 = 0;
  for (float x : vector) {
    if (!std::isfinite(x)) return Status::InvalidArgument("vector has a non-finite component");
    norm2 += static_cast<double>(x) * x;
  }
  if (norm2 == 0) return Status::InvalidArgument("vector is all zeros");
  // Scores are 1 - inner product, which is cosine only for unit vectors: normalise a copy
  // rather than silently returning wrong scores for a caller's raw vectors.
  *data = vector.data();
  double norm = std::sqrt(norm2);
  if (std::fabs(norm - 1.0) > kNormTolerance) {
    unit->assign(vector.begin(), vector.end());
    for (float& x : *unit) x = static_cast<float>(x / norm);
    *data = unit->data();
  }
  return Status::OK();
}

// Makes room in the graph for `additional` new labels (hnswlib cannot grow during addPoint).
Status HnswVectorIndex::ReserveLocked(size_t additional) {
  try {
    size_t needed = graph_->cur_element_count + additional;
    if (needed > graph_->max_elements_) {
      size_t capacity = std::max<size_t>(kInitialCapacity, graph_->max_elements_);
      while (capacity < needed) capacity *= 2;
      graph_->resizeIndex(capacity);
    }
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("out of memory growing the vector index");
  } catch (const std::exception& e) {
    return Status::Internal(std::string("hnswlib resizeIndex: ") + e.what());
  }
  return Status::OK();
}

// An existing label (live or marked deleted) is updated in place: hnswlib 0.6.2 unmarks it and
// repairs its neighbourhood (updatePoint).
Status HnswVectorIndex::AddToGraphLocked(int64_t label, const float* data) {
  try {
    graph_->addPoint(data, static_cast<hnswlib::labeltype>(label));
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("out of memory growing the vector index");
  } catch (const std::exception& e) {
    return Status::Internal(std::string("hnswlib addPoint: ") + e.what());
  }
  return Status::OK();
}

Status HnswVectorIndex::Upsert(int64_t label, std::span<const float> vector) {
  std::vector<float> unit;
  const float* data = nullptr;
  KB_RETURN_IF_ERROR(Prepare(label, vector, &unit, &data));
  index_internal::WriterLock lock(mu_);
  bool in_graph = graph_->label_lookup_.count(static_cast<hnswlib::labeltype>(label)) != 0;
  KB_RETURN_IF_ERROR(ReserveLocked(in_graph ? 0 : 1));
  KB_RETURN_IF_ERROR(AddToGraphLocked(label, data));
  PutRowLocked(label, data);
  return Status::OK();
}

Status HnswVectorIndex::UpsertBatch(const std::vector<int64_t>& labels,
                                    const std::vector<std::vector<float>>& vectors) {
  if (labels.size() != vectors.size()) {
    return Status::InvalidArgument("labels and vectors differ in length");
  }
  std::vector<std::vector<float>> units(labels.size());
  std::vector<const float*> data(labels.size());
  std::unordered_set<int64_t> distinct;
  for (size_t i = 0; i < labels.size(); ++i) {
    KB_RETURN_IF_ERROR(Prepare(labels[i], vectors[i], &units[i], &data[i]));
    if (!distinct.insert(labels[i]).second) {
      return Status::InvalidArgument("duplicate label in batch: " + std::to_string(labels[i]));
    }
  }
  index_internal::WriterLock lock(mu_);
  size_t fresh = 0;
  for (int64_t label : labels) {
    fresh += graph_->label_lookup_.count(static_cast<hnswlib::labeltype>(label)) == 0;
  }
  KB_RETURN_IF_ERROR(ReserveLocked(fresh));
  // hnswlib's addPoint is safe to call concurrently for distinct labels (per-node locks); the
  // graph insertion is the dominant cost of ingestion, so spread it over the cores.
  const size_t threads =
      labels.size() >= kParallelInsertMin
          ? std::min<size_t>(kMaxInsertThreads, std::max(1u, std::thread::hardware_concurrency()))
          : 1;
  std::vector<Status> results(threads);
  // The helpers run while this thread holds mu_ exclusively (joined below, before it is
  // released): the analysis cannot see a lock held on their behalf.
  auto work = [&](size_t t) NO_THREAD_SAFETY_ANALYSIS {
    for (size_t i = t; i < labels.size(); i += threads) {
      Status s = AddToGraphLocked(labels[i], data[i]);
      if (!s.ok() && results[t].ok()) results[t] = s;
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  // Rows follow the graph: a vector that did not reach the graph is not made searchable.
  for (size_t i = 0; i < labels.size(); ++i) {
    if (graph_->label_lookup_.count(static_cast<hnswlib::labeltype>(labels[i])) != 0) {
      PutRowLocked(labels[i], data[i]);
    }
  }
  for (const Status& s : results) {
    if (!s.ok()) return s;
  }
  return Status::OK();
}

void HnswVectorIndex::Remove(int64_t label) {
  index_internal::WriterLock lock(mu_);
  if (row_of_.count(label) == 0) return;
  try {
    graph_->markDelete(static_cast<hnswlib::labeltype>(label));
  } catch (const std::exception&) {
    // Not in the graph or already deleted: the exact store is authoritative for liveness.
  }
  EraseRowLocked(label);
}

std::vector<VectorHit> HnswVectorIndex::ExactLocked(
    const float* query, size_t k, const std::function<bool(int64_t)>& accept) const {
  std::vector<VectorHit> heap;  // worst hit at the front
  if (k == 0) return heap;
  heap.reserve(std::min(k, row_labels_.size()) + 1);
  const size_t n = row_labels_.size();
  const float* row = rows_.data();
  for (size_t i = 0; i < n; ++i, row += dim_) {
    int64_t label = row_labels_[i];
    if (accept && !accept(label)) continue;
    VectorHit hit{label, dot_(query, row, dim_)};
    if (heap.size() < k) {
      heap.push_back(hit);
      std::push_heap(heap.begin(), heap.end(), Better);
    } else if (Better(hit, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), Better);
      heap.back() = hit;
      std::push_heap(heap.begin(), heap.end(), Better);
    }
  }
  std::sort_heap(heap.begin(), heap.end(), Better);
  return heap;
}

std::vector<VectorHit> HnswVectorIndex::GraphLocked(
    const float* query, size_t k, const std::function<bool(int64_t)>& accept) const {
  const size_t live = row_labels_.size();
  // hnswlib's beam is max(ef, k): asking for ef results costs no more than asking for k, so a
  // filtered search starts with the whole beam.
  size_t want =
      accept ? std::max({k * kFilterWidenFactor, static_cast<size_t>(options_.ef_search), k}) : k;
  std::vector<VectorHit> hits;
  while (true) {
    if (accept && want > live / kFilterExactFraction) {
      return ExactLocked(query, k, accept);
    }
    auto found = graph_->searchKnn(query, std::min(want, live));
    size_t returned = found.size();
    hits.clear();
    while (!found.empty()) {
      auto [distance, label] = found.top();
      found.pop();
      int64_t l = static_cast<int64_t>(label);
      if (!accept || accept(l)) hits.push_back({l, 1.0f - distance});
    }
    if (!accept || hits.size() >= k || returned < std::min(want, live) || want >= live) break;
    want *= kFilterWidenFactor;
  }
  std::sort(hits.begin(), hits.end(), Better);
  if (hits.size() > k) hits.resize(k);
  return hits;
}

std::vector<VectorHit> HnswVectorIndex::Search(std::span<const float> query, size_t k,
                                               const std::function<bool(int64_t)>& accept) const {
  index_internal::ReaderLock lock(mu_);
  if (query.size() != dim_ || k == 0 || row_labels_.empty()) return {};
  if (row_labels_.size() < options_.exact_search_below) {
    return ExactLocked(query.data(), k, accept);
  }
  try {
    return GraphLocked(query.data(), k, accept);
  } catch (const std::exception&) {
    // hnswlib throws only on an inconsistent graph; an exact answer is still correct.
    return ExactLocked(query.data(), k, accept);
  }
}

size_t HnswVectorIndex::MemoryBytes() const {
  index_internal::ReaderLock lock(mu_);
  // Hash-map nodes: key, value, next pointer and allocator overhead, roughly 48 bytes.
  constexpr size_t kMapNode = 48;
  size_t bytes = rows_.capacity() * sizeof(float) + row_labels_.capacity() * sizeof(int64_t) +
                 row_of_.size() * kMapNode;
  bytes += graph_->max_elements_ * (graph_->size_data_per_element_ + sizeof(void*) + sizeof(int));
  bytes += graph_->label_lookup_.size() * kMapNode;
  for (size_t i = 0; i < graph_->cur_element_count; ++i) {
    bytes += graph_->size_links_per_element_ * static_cast<size_t>(graph_->element_levels_[i]);
  }
  return bytes;
}

Status HnswVectorIndex::Save(const std::string& dir, int64_t lsn) {
  MutexLock save_lock(save_mu_);
  KB_RETURN_IF_ERROR(MakeDirs(dir));
  const std::string name = "graph-" + HexEncode(RandomBytes(8)) + ".hnsw";
  const std::string final_path = dir + "/" + name;
  const std::string tmp_path = final_path + ".tmp";
  Manifest manifest;
  {
    // Shared: searches go on while the snapshot is written; mutations wait.
    index_internal::ReaderLock lock(mu_);
    try {
      graph_->saveIndex(tmp_path);
    } catch (const std::exception& e) {
      std::remove(tmp_path.c_str());
      return Status::IOError("write " + tmp_path + ": " + e.what());
    }
    manifest.dimension = static_cast<uint32_t>(dim_);
    manifest.m = static_cast<uint32_t>(graph_->M_);
    manifest.ef_construction = static_cast<uint32_t>(graph_->ef_construction_);
    manifest.live_count = row_labels_.size();
    manifest.graph_elements = graph_->cur_element_count;
    manifest.graph_size = ExpectedGraphFileSize(*graph_);
  }
  manifest.lsn = lsn;
  manifest.graph_name = name;
  auto fail = [&](Status s) {
    std::remove(tmp_path.c_str());
    return s;
  };
  Status synced = FsyncPath(tmp_path);
  if (!synced.ok()) return fail(synced);
  auto hashed = HashFile(tmp_path);
  if (!hashed.ok()) return fail(hashed.status());
  if (hashed->first != manifest.graph_size) {
    return fail(Status::IOError("short write of " + tmp_path + " (" +
                                std::to_string(hashed->first) + " of " +
                                std::to_string(manifest.graph_size) + " bytes; disk full?)"));
  }
  manifest.graph_sha256.assign(reinterpret_cast<const char*>(hashed->second.data()),
                               hashed->second.size());
  if (std::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    return fail(Status::IOError("rename " + tmp_path + ": " + std::strerror(errno)));
  }
  KB_RETURN_IF_ERROR(FsyncPath(dir));
  // The commit point: from here on the new graph is the saved index.
  KB_RETURN_IF_ERROR(AtomicWriteFile(dir + "/" + kManifestName, EncodeManifest(manifest)));
  lsn_.store(lsn);

  // Best effort: older graphs and temporaries from crashed saves.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string file = entry.path().filename().string();
    if (file != name && file.rfind("graph-", 0) == 0) std::filesystem::remove(entry.path(), ec);
  }
  return Status::OK();
}

Result<std::unique_ptr<VectorIndex>> HnswVectorIndex::LoadFrom(const std::string& dir,
                                                               const VectorIndexOptions& options) {
  const std::string manifest_path = dir + "/" + kManifestName;
  auto data = ReadFile(manifest_path);
  if (!data.ok()) {
    if (data.status().code() == Code::kNotFound) {
      return Status::NotFound("no saved vector index in " + dir);
    }
    return data.status();
  }
  KB_ASSIGN_OR_RETURN(Manifest manifest, DecodeManifest(*data, manifest_path));
  if (options.dimension < 1 || manifest.dimension != static_cast<uint32_t>(options.dimension)) {
    return Status::Corruption("vector index " + manifest_path + " has dimension " +
                              std::to_string(manifest.dimension) + ", expected " +
                              std::to_string(options.dimension));
  }
  const std::string graph_path = dir + "/" + manifest.graph_name;
  KB_ASSIGN_OR_RETURN(auto hashed, HashFile(graph_path));
  if (hashed.first != manifest.graph_size) {
    return Status::Corruption("vector index graph file " + graph_path + " has " +
                              std::to_string(hashed.first) + " bytes, manifest says " +
                              std::to_string(manifest.graph_size));
  }
  if (std::memcmp(hashed.second.data(), manifest.graph_sha256.data(), hashed.second.size()) != 0) {
    return Status::Corruption("vector index graph file " + graph_path + ": checksum mismatch");
  }

  VectorIndexOptions effective = options;
  effective.m = static_cast<int>(manifest.m);
  effective.ef_construction = static_cast<int>(manifest.ef_construction);
  auto index = std::make_unique<HnswVectorIndex>(effective);
  // Not yet shared: uncontended, taken so that the analysis checks the accesses below.
  index_internal::WriterLock lock(index->mu_);
  auto corrupt = [&](const std::string& why) {
    return Status::Corruption("vector index graph file " + graph_path + ": " + why);
  };
  Graph* g = nullptr;
  try {
    size_t capacity = std::max<size_t>(kInitialCapacity, manifest.graph_elements);
    index->graph_ = std::make_unique<Graph>(&index->space_, graph_path, false, capacity);
    g = index->graph_.get();
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("out of memory loading " + graph_path);
  } catch (const std::exception& e) {
    return corrupt(e.what());
  }
  const size_t dim = static_cast<size_t>(manifest.dimension);
  const size_t links0 = g->maxM0_ * sizeof(hnswlib::tableint) + sizeof(hnswlib::linklistsizeint);
  if (g->cur_element_count != manifest.graph_elements || g->M_ != manifest.m ||
      g->maxM0_ != 2 * g->M_ || g->offsetData_ != links0 ||
      g->label_offset_ != links0 + dim * sizeof(float) ||
      g->size_data_per_element_ != links0 + dim * sizeof(float) + sizeof(hnswlib::labeltype) ||
      (g->cur_element_count > 0 && g->enterpoint_node_ >= g->cur_element_count)) {
    return corrupt("header does not match the manifest");
  }
  g->setEf(static_cast<size_t>(std::max(options.ef_search, 1)));
  // hnswlib 0.6.2's loading constructor leaves num_deleted_ uninitialised before counting
  // into it; recount so that searches know whether to skip deleted elements.
  size_t deleted = 0;
  for (size_t i = 0; i < g->cur_element_count; ++i) {
    if (g->isMarkedDeleted(static_cast<hnswlib::tableint>(i))) ++deleted;
  }
  g->num_deleted_ = deleted;
  for (size_t i = 0; i < g->cur_element_count; ++i) {
    hnswlib::tableint id = static_cast<hnswlib::tableint>(i);
    if (g->isMarkedDeleted(id)) continue;
    int64_t label = static_cast<int64_t>(g->getExternalLabel(id));
    if (label < 0 || index->row_of_.count(label) != 0) return corrupt("bad or duplicate label");
    index->PutRowLocked(label, reinterpret_cast<const float*>(g->getDataByInternalId(id)));
  }
  if (index->row_labels_.size() != manifest.live_count) {
    return corrupt("holds " + std::to_string(index->row_labels_.size()) +
                   " live vectors, manifest says " + std::to_string(manifest.live_count));
  }
  index->lsn_.store(manifest.lsn);
  return std::unique_ptr<VectorIndex>(std::move(index));
}

}  // namespace

std::unique_ptr<VectorIndex> VectorIndex::Create(const VectorIndexOptions& options) {
  auto index = std::make_unique<HnswVectorIndex>(options);
  index->InitEmptyGraph();
  return index;
}

Result<std::unique_ptr<VectorIndex>> VectorIndex::Load(const std::string& dir,
                                                       const VectorIndexOptions& options) {
  return HnswVectorIndex::LoadFrom(dir, options);
}

Status VectorIndex::UpsertBatch(const std::vector<int64_t>& labels,
                                const std::vector<std::vector<float>>& vectors) {
  if (labels.size() != vectors.size()) {
    return Status::InvalidArgument("labels and vectors differ in length");
  }
  for (size_t i = 0; i < labels.size(); ++i) KB_RETURN_IF_ERROR(Upsert(labels[i], vectors[i]));
  return Status::OK();
}

}  // namespace kb
