// The JIT session: target selection (host or a named CPU), O3 with loop and
// SLP vectorization, ORC LLJIT compilation, and the printable stages (optimized
// LLVM IR, assembly from a clone of the same module with the same target options).
#include "compiler/codegen/backend.h"
#include "compiler/codegen/emit.h"

#include <llvm/ExecutionEngine/Orc/Core.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/Transforms/Utils/Cloning.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>

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

void optimize(llvm::Module& m, llvm::TargetMachine* tm) {
  llvm::PipelineTuningOptions pto;
  pto.LoopVectorization = true;
  pto.SLPVectorization = true; // off by default in PipelineTuningOptions
  // The kernels are register-blocked by hand; generic unrolling of their K
  // loops and row tails only multiplies code (and compile time).
  pto.LoopUnrolling = false;
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder pb(tm, pto);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager mpm = pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3);
  mpm.run(m, mam);
}

class LlvmSession final : public JitSession {
public:
  bool init(const std::vector<BackendGraph>& graphs, const std::string& cpu, std::string& error) {
    auto t0 = std::chrono::steady_clock::now();
    initTargets();
    llvm::orc::JITTargetMachineBuilder jtmb(llvm::Triple(llvm::sys::getProcessTriple()));
    if (cpu.empty() || cpu == "host") {
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
    const llvm::MCSubtargetInfo* sti = TM->getMCSubtargetInfo();
    width_ = sti->checkFeatures("+avx512f") ? 16 : 8;

    auto ctx = std::make_unique<llvm::LLVMContext>();
    std::unique_ptr<llvm::Module> m =
        emitKernels(*ctx, graphs, width_, cpu_, TM->getTargetFeatureString().str());
    m->setDataLayout(TM->createDataLayout());
    m->setTargetTriple(TM->getTargetTriple().str());
    std::string verr;
    llvm::raw_string_ostream vos(verr);
    if (llvm::verifyModule(*m, &vos)) {
      error = "internal error: invalid LLVM IR emitted: " + verr;
      return false;
    }
    auto tOpt = std::chrono::steady_clock::now();
    optimize(*m, TM.get());
    auto tOptEnd = std::chrono::steady_clock::now();
    keep_ = llvm::CloneModule(*m); // for --stage llvm / asm, in the same context

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
    tsctx_ = llvm::orc::ThreadSafeContext(std::move(ctx));
    if (auto err = jit_->addIRModule(llvm::orc::ThreadSafeModule(std::move(m), tsctx_))) {
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
    phase_ms_[0] = std::chrono::duration<double, std::milli>(tOpt - t0).count();
    phase_ms_[1] = std::chrono::duration<double, std::milli>(tOptEnd - tOpt).count();
    phase_ms_[2] = std::chrono::duration<double, std::milli>(tEnd - tOptEnd).count();
    return true;
  }

  ~LlvmSession() override {
    keep_.reset();
    jit_.reset();
  }

  const std::vector<std::vector<KernelFn>>& kernels() const override { return fns_; }
  int vectorWidth() const override { return width_; }
  std::string timingText() const override {
    char buf[160];
    std::snprintf(buf, sizeof buf, "emit %.1f ms, O3 %.1f ms, machine code %.1f ms", phase_ms_[0], phase_ms_[1],
                  phase_ms_[2]);
    return buf;
  }
  std::string cpuName() const override { return cpu_; }

  std::string llvmIR() const override {
    std::string s;
    llvm::raw_string_ostream os(s);
    keep_->print(os, nullptr);
    return s;
  }

  std::string assembly() const override {
    auto tm = jtmb_->createTargetMachine();
    if (!tm) return "error: " + errText(tm.takeError());
    std::unique_ptr<llvm::Module> clone = llvm::CloneModule(*keep_);
    llvm::SmallString<0> buf;
    llvm::raw_svector_ostream os(buf);
    llvm::legacy::PassManager pm;
    if ((*tm)->addPassesToEmitFile(pm, os, nullptr, llvm::CodeGenFileType::AssemblyFile))
      return "error: the target cannot emit assembly";
    pm.run(*clone);
    return std::string(buf.str());
  }

private:
  std::unique_ptr<llvm::orc::JITTargetMachineBuilder> jtmb_;
  std::unique_ptr<llvm::orc::LLJIT> jit_;
  llvm::orc::ThreadSafeContext tsctx_;
  std::unique_ptr<llvm::Module> keep_;
  std::vector<std::vector<KernelFn>> fns_;
  std::string cpu_;
  int width_ = 16;
  double phase_ms_[3] = {0, 0, 0};
};

} // namespace

std::unique_ptr<JitSession> JitSession::create(const std::vector<BackendGraph>& graphs,
                                               const std::string& cpu, std::string& error) {
  auto s = std::make_unique<LlvmSession>();
  if (!s->init(graphs, cpu, error)) return nullptr;
  return s;
}

} // namespace descent
