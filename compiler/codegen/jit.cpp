// The JIT session: target selection (host or a named CPU), the kernels split
// over a few modules that are emitted, optimized (a short cleanup pipeline:
// the kernels are vectorized by construction) and turned into object code on parallel threads, linked by
// ORC LLJIT, and the printable stages (optimized LLVM IR, assembly with the
// same target options), rebuilt on demand.
#include "compiler/codegen/backend.h"
#include "compiler/codegen/emit.h"
#include "compiler/codegen/target.h"

#include <llvm/ExecutionEngine/Orc/Core.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/Object/ArchiveWriter.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/SmallVectorMemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/TargetParser/Host.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

namespace descent {

namespace {

std::string errText(llvm::Error e) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << e;
  return s;
}

void initTargets() {
  static std::once_flag once; // LLVM's target registry is process-wide anyway
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();
  });
}

/// The optimization pipeline. The kernels arrive already vectorized and
/// register-blocked, so they need cleanup, not transformation: promote the
/// allocas, fold and CSE the index arithmetic, hoist loop invariants (the
/// A/B base addresses of the K loop), remove redundant loads. Measured on the
/// notebook model: the O3 default pipeline (with loop + SLP vectorization)
/// took ~45% of compile time and its output also made instruction selection
/// slower, for no gain in the kernels' speed (GEMMs at the same GFLOP/s).
constexpr const char* kPipeline =
    "function(sroa,early-cse,instcombine<no-verify-fixpoint>,simplifycfg,loop-mssa(licm),gvn,"
    "instcombine<no-verify-fixpoint>,dce)";

bool optimize(llvm::Module& m, llvm::TargetMachine* tm, std::string& error) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder pb(tm);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager mpm;
  if (auto err = pb.parsePassPipeline(mpm, kPipeline)) {
    error = "internal error: " + errText(std::move(err));
    return false;
  }
  mpm.run(m, mam);
  return true;
}

/// Rough relative cost of optimizing and code-generating a kernel: the GEMMs
/// (register-blocked micro-kernels, one or two tile variants) dominate.
double compileCost(const Kernel& k) {
  switch (k.kind) {
  case KernelKind::Gemm: return 10.0 + 2.0 * double(k.ops.size());
  case KernelKind::RowSoftmaxLoss:
  case KernelKind::RowOp:
  case KernelKind::Loss: return 4.0;
  default: return 1.0 + 0.5 * double(k.ops.size());
  }
}

class LlvmSession final : public JitSession {
public:
  /// The target: CPU, features, vector width and the code generation options
  /// shared by the JIT, the printable stages and the AOT object.
  bool setTarget(const std::vector<BackendGraph>& graphs, const std::string& cpu, std::string& error) {
    graphs_ = graphs;
    initTargets();
    llvm::orc::JITTargetMachineBuilder jtmb(llvm::Triple(llvm::sys::getProcessTriple()));
    // A name LLVM does not know would make it warn and then abort.
    if (std::string why = checkCpuName(cpu, /*will_run=*/false); !why.empty()) {
      error = why;
      return false;
    }
    if (isHostCpu(cpu)) {
      auto host = llvm::orc::JITTargetMachineBuilder::detectHost();
      if (!host) {
        error = errText(host.takeError());
        return false;
      }
      jtmb = std::move(*host);
    } else {
      jtmb.setCPU(cpu);
    }
    // The same options for the JIT and for the --stage asm dump.
    jtmb.setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
    jtmb.setCodeModel(llvm::CodeModel::Small);
    jtmb.setRelocationModel(llvm::Reloc::PIC_);
    jtmb_ = std::make_unique<llvm::orc::JITTargetMachineBuilder>(jtmb);
    auto tm = jtmb.createTargetMachine();
    if (!tm) {
      error = errText(tm.takeError());
      return false;
    }
    std::unique_ptr<llvm::TargetMachine> TM = std::move(*tm);
    cpu_ = TM->getTargetCPU().str();
    features_ = TM->getTargetFeatureString().str();
    const llvm::MCSubtargetInfo* sti = TM->getMCSubtargetInfo();
    width_ = sti->checkFeatures("+avx512f") ? 16 : 8;
    return true;
  }

  bool init(const std::vector<BackendGraph>& graphs, const std::string& cpu, std::string& error) {
    auto t0 = std::chrono::steady_clock::now();
    if (!setTarget(graphs, cpu, error)) return false;
    llvm::orc::JITTargetMachineBuilder& jtmb = *jtmb_;

    // Split the kernels over a few modules (largest first onto the least
    // loaded) and run emission, optimization and machine code for each on its own
    // thread with its own LLVMContext and TargetMachine: optimization and
    // codegen are ~98% of compile time and the kernels are independent functions.
    std::vector<KernelRef> refs;
    std::vector<double> cost;
    for (size_t g = 0; g < graphs.size(); ++g)
      for (size_t k = 0; k < graphs[g].kg->kernels.size(); ++k) {
        refs.push_back({g, k});
        cost.push_back(compileCost(graphs[g].kg->kernels[k]));
      }
    // One module more than cores: the cost estimate is rough, and a third
    // module lets the OS even out the imbalance (measured on 2 vCPUs, train +
    // eval of the notebook model: 1 module ~135 ms, 2 ~105 ms, 3 ~95 ms, 4 ~98 ms).
    size_t nparts = std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()) + 1, 8);
    nparts = std::min(nparts, std::max<size_t>(1, refs.size()));
    std::vector<size_t> order(refs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return cost[a] > cost[b]; });
    std::vector<Part> parts(nparts);
    for (size_t i : order) {
      auto least = std::min_element(parts.begin(), parts.end(),
                                    [](const Part& a, const Part& b) { return a.cost < b.cost; });
      least->kernels.push_back(refs[i]);
      least->cost += cost[i];
    }
    // A part whose thread cannot start (no memory for its stack, say) is
    // compiled here instead: slower, same code.
    std::vector<std::thread> workers;
    std::vector<size_t> here{0};
    workers.reserve(nparts); // nothing below may throw while a worker runs unjoined
    here.reserve(nparts);
    for (size_t p = 1; p < nparts; ++p) {
      try {
        workers.emplace_back([this, &parts, p] { compilePart(parts[p]); });
      } catch (const std::system_error&) {
        here.push_back(p);
      }
    }
    for (size_t p : here)
      compilePart(parts[p]);
    for (auto& w : workers) w.join();
    auto tParts = std::chrono::steady_clock::now();
    for (Part& p : parts)
      if (!p.error.empty()) {
        error = p.error;
        return false;
      }

    auto jit = llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(jtmb).create();
    if (!jit) {
      error = errText(jit.takeError());
      return false;
    }
    jit_ = std::move(*jit);
    // Optimized code may call these (zeroing, copies); give their addresses
    // explicitly instead of relying on what the executable exports.
    auto& jd = jit_->getMainJITDylib();
    llvm::orc::SymbolMap syms;
    auto& es = jit_->getExecutionSession();
    syms[es.intern("memset")] = {llvm::orc::ExecutorAddr::fromPtr(&::memset), llvm::JITSymbolFlags::Exported};
    syms[es.intern("memcpy")] = {llvm::orc::ExecutorAddr::fromPtr(&::memcpy), llvm::JITSymbolFlags::Exported};
    syms[es.intern("memmove")] = {llvm::orc::ExecutorAddr::fromPtr(&::memmove), llvm::JITSymbolFlags::Exported};
    if (auto err = jd.define(llvm::orc::absoluteSymbols(std::move(syms)))) {
      error = errText(std::move(err));
      return false;
    }
    for (Part& p : parts)
      if (p.object)
        if (auto err = jit_->addObjectFile(std::move(p.object))) {
          error = errText(std::move(err));
          return false;
        }
    for (const BackendGraph& g : graphs) {
      fns_.emplace_back();
      for (const Kernel& k : g.kg->kernels) {
        auto addr = jit_->lookup(g.prefix + k.name);
        if (!addr) {
          error = errText(addr.takeError());
          return false;
        }
        fns_.back().push_back(addr->toPtr<KernelFn>());
      }
    }
    auto tEnd = std::chrono::steady_clock::now();
    nparts_ = nparts;
    for (const Part& p : parts) {
      phase_ms_[0] = std::max(phase_ms_[0], p.ms[0]);
      phase_ms_[1] = std::max(phase_ms_[1], p.ms[1]);
      phase_ms_[2] = std::max(phase_ms_[2], p.ms[2]);
    }
    parts_ms_ = std::chrono::duration<double, std::milli>(tParts - t0).count();
    link_ms_ = std::chrono::duration<double, std::milli>(tEnd - tParts).count();
    return true;
  }

  ~LlvmSession() override { jit_.reset(); }

  const std::vector<std::vector<KernelFn>>& kernels() const override { return fns_; }
  int vectorWidth() const override { return width_; }
  std::string timingText() const override {
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "%zu modules in parallel, %.1f ms (slowest: emit %.1f, optimize %.1f, machine code %.1f), link %.1f ms",
                  nparts_, parts_ms_, phase_ms_[0], phase_ms_[1], phase_ms_[2], link_ms_);
    return buf;
  }
  std::string cpuName() const override { return cpu_; }

  // The printable stages are rebuilt on demand (emission and optimization are
  // deterministic, so this is the IR the JIT compiled): keeping a clone of
  // every module would cost compile time on every run for a debugging view.
  std::string llvmIR() const override {
    return withRebuiltModule([](llvm::Module& m, llvm::TargetMachine&) {
      std::string s;
      llvm::raw_string_ostream os(s);
      m.print(os, nullptr);
      return s;
    });
  }

  /// All kernels in one module, emitted as a relocatable object file.
  std::string objectFile(std::string& error) const {
    llvm::LLVMContext ctx;
    auto tm = jtmb_->createTargetMachine();
    if (!tm) {
      error = errText(tm.takeError());
      return {};
    }
    auto m = buildModule(ctx, **tm, {}, nullptr, &error);
    if (!m) return {};
    llvm::SmallString<0> buf;
    llvm::raw_svector_ostream os(buf);
    llvm::legacy::PassManager pm;
    if ((*tm)->addPassesToEmitFile(pm, os, nullptr, llvm::CodeGenFileType::ObjectFile)) {
      error = "internal error: the target cannot emit an object file";
      return {};
    }
    pm.run(*m);
    return std::string(buf.str());
  }

  std::string assembly() const override {
    return withRebuiltModule([](llvm::Module& m, llvm::TargetMachine& tm) -> std::string {
      llvm::SmallString<0> buf;
      llvm::raw_svector_ostream os(buf);
      llvm::legacy::PassManager pm;
      if (tm.addPassesToEmitFile(pm, os, nullptr, llvm::CodeGenFileType::AssemblyFile))
        return "error: the target cannot emit assembly";
      pm.run(m);
      return std::string(buf.str());
    });
  }

private:
  /// Emits and optimizes all kernels again into one module, with the JIT's
  /// target options, and returns what `use(module, target machine)` makes of it.
  template <typename Use> std::string withRebuiltModule(Use use) const {
    llvm::LLVMContext ctx;
    auto tm = jtmb_->createTargetMachine();
    if (!tm) return "error: " + errText(tm.takeError());
    std::string err;
    auto m = buildModule(ctx, **tm, {}, nullptr, &err);
    if (!m) return "error: " + err;
    return use(*m, **tm);
  }

  /// Kernels compiled together into one module, and the result.
  struct Part {
    std::vector<KernelRef> kernels;
    double cost = 0;
    std::unique_ptr<llvm::MemoryBuffer> object;
    std::string error;
    double ms[3] = {0, 0, 0}; ///< emit, optimize, machine code
  };

  /// Emits `only` (all kernels when empty) into a new module of `ctx` and optimizes it.
  std::unique_ptr<llvm::Module> buildModule(llvm::LLVMContext& ctx, llvm::TargetMachine& tm,
                                            const std::vector<KernelRef>& only, double* ms = nullptr,
                                            std::string* error = nullptr) const {
    auto t0 = std::chrono::steady_clock::now();
    std::unique_ptr<llvm::Module> m = emitKernels(ctx, graphs_, width_, cpu_, features_, only);
    m->setDataLayout(tm.createDataLayout());
    m->setTargetTriple(tm.getTargetTriple().str());
    std::string verr;
    llvm::raw_string_ostream vos(verr);
    if (llvm::verifyModule(*m, &vos)) {
      if (error) *error = "internal error: invalid LLVM IR emitted: " + verr;
      return nullptr;
    }
    auto t1 = std::chrono::steady_clock::now();
    std::string oerr;
    if (!optimize(*m, &tm, oerr)) {
      if (error) *error = oerr;
      return nullptr;
    }
    if (ms) {
      ms[0] = std::chrono::duration<double, std::milli>(t1 - t0).count();
      ms[1] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count();
    }
    return m;
  }

  /// Emission, optimization and machine code of one part, on the calling
  /// thread; an exception becomes the part's error (it may be a worker thread).
  void compilePart(Part& part) const {
    try {
      compilePartOrThrow(part);
    } catch (const std::bad_alloc&) {
      part.error = "out of memory while compiling the kernels";
    } catch (const std::exception& e) {
      part.error = e.what();
    }
  }

  void compilePartOrThrow(Part& part) const {
    auto tm = jtmb_->createTargetMachine();
    if (!tm) {
      part.error = errText(tm.takeError());
      return;
    }
    llvm::LLVMContext ctx;
    auto m = buildModule(ctx, **tm, part.kernels, part.ms, &part.error);
    if (!m) return;
    auto t0 = std::chrono::steady_clock::now();
    // What ORC's SimpleCompiler does, so the code is the one LLJIT would make.
    llvm::SmallVector<char, 0> obj;
    llvm::raw_svector_ostream os(obj);
    llvm::legacy::PassManager pm;
    llvm::MCContext* mc = nullptr;
    if ((*tm)->addPassesToEmitMC(pm, mc, os)) {
      part.error = "internal error: the target cannot emit machine code";
      return;
    }
    pm.run(*m);
    part.object = std::make_unique<llvm::SmallVectorMemoryBuffer>(std::move(obj), "descent-kernels", false);
    part.ms[2] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }

  std::vector<BackendGraph> graphs_;
  std::unique_ptr<llvm::orc::JITTargetMachineBuilder> jtmb_;
  std::unique_ptr<llvm::orc::LLJIT> jit_;
  std::vector<std::vector<KernelFn>> fns_;
  std::string cpu_, features_;
  int width_ = 16;
  size_t nparts_ = 1;
  double phase_ms_[3] = {0, 0, 0};
  double parts_ms_ = 0, link_ms_ = 0;
};

} // namespace

std::string emitObjectFile(const std::vector<BackendGraph>& graphs, const std::string& cpu,
                           std::string& error) {
  LlvmSession s;
  if (!s.setTarget(graphs, cpu, error)) return {};
  return s.objectFile(error);
}

std::string staticLibrary(const std::vector<std::pair<std::string, std::string>>& members,
                          std::string& error) {
  initTargets(); // the symbol table reads the members' symbols
  std::vector<llvm::NewArchiveMember> ms;
  for (const auto& [name, bytes] : members) ms.emplace_back(llvm::MemoryBufferRef(bytes, name));
  auto buf = llvm::writeArchiveToBuffer(ms, llvm::SymtabWritingMode::NormalSymtab,
                                        llvm::object::Archive::K_GNU, /*Deterministic=*/true,
                                        /*Thin=*/false);
  if (!buf) {
    error = errText(buf.takeError());
    return {};
  }
  return std::string((*buf)->getBufferStart(), (*buf)->getBufferSize());
}

std::unique_ptr<JitSession> JitSession::create(const std::vector<BackendGraph>& graphs,
                                               const std::string& cpu, std::string& error) {
  auto s = std::make_unique<LlvmSession>();
  if (!s->init(graphs, cpu, error)) return nullptr;
  return s;
}

} // namespace descent
