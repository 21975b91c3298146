// FMA peak measurement (see peak.h): emits `peak(iters)` with 24 independent
// <W x float> llvm.fmuladd chains (enough to cover the FMA latency of two
// pipes) as LLVM IR, JITs it for the host and times it.
#include "compiler/codegen/peak.h"

#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/Module.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/TargetParser/Host.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace descent {

namespace {

constexpr int kChains = 24;

using PeakFn = float (*)(int64_t iters);

std::unique_ptr<llvm::Module> emitPeak(llvm::LLVMContext& ctx, int width) {
  auto m = std::make_unique<llvm::Module>("fma_peak", ctx);
  llvm::IRBuilder<> b(ctx);
  auto* vt = llvm::FixedVectorType::get(b.getFloatTy(), unsigned(width));
  auto* fn = llvm::Function::Create(llvm::FunctionType::get(b.getFloatTy(), {b.getInt64Ty()}, false),
                                    llvm::Function::ExternalLinkage, "peak", m.get());
  auto* entry = llvm::BasicBlock::Create(ctx, "entry", fn);
  auto* loop = llvm::BasicBlock::Create(ctx, "loop", fn);
  auto* done = llvm::BasicBlock::Create(ctx, "done", fn);
  b.SetInsertPoint(entry);
  // Multiplier just below 1 and a tiny addend keep every chain finite and normal.
  llvm::Value* a = llvm::ConstantVector::getSplat(llvm::ElementCount::getFixed(unsigned(width)),
                                                  llvm::ConstantFP::get(b.getFloatTy(), 0.999999));
  llvm::Value* c = llvm::ConstantVector::getSplat(llvm::ElementCount::getFixed(unsigned(width)),
                                                  llvm::ConstantFP::get(b.getFloatTy(), 1e-6));
  b.CreateBr(loop);
  b.SetInsertPoint(loop);
  auto* i = b.CreatePHI(b.getInt64Ty(), 2);
  i->addIncoming(b.getInt64(0), entry);
  std::vector<llvm::PHINode*> acc;
  std::vector<llvm::Value*> next;
  llvm::Function* fma = llvm::Intrinsic::getDeclaration(m.get(), llvm::Intrinsic::fmuladd, {vt});
  for (int k = 0; k < kChains; ++k) {
    auto* p = b.CreatePHI(vt, 2);
    p->addIncoming(llvm::ConstantVector::getSplat(llvm::ElementCount::getFixed(unsigned(width)),
                                                  llvm::ConstantFP::get(b.getFloatTy(), 1.0 + k)),
                   entry);
    acc.push_back(p);
  }
  for (int k = 0; k < kChains; ++k) next.push_back(b.CreateCall(fma, {acc[size_t(k)], a, c}));
  auto* inext = b.CreateAdd(i, b.getInt64(1));
  i->addIncoming(inext, loop);
  for (int k = 0; k < kChains; ++k) acc[size_t(k)]->addIncoming(next[size_t(k)], loop);
  b.CreateCondBr(b.CreateICmpSLT(inext, fn->getArg(0)), loop, done);
  b.SetInsertPoint(done);
  llvm::Value* sum = next[0];
  for (int k = 1; k < kChains; ++k) sum = b.CreateFAdd(sum, next[size_t(k)]);
  b.CreateRet(b.CreateExtractElement(sum, uint64_t(0)));
  return m;
}

double timeRun(PeakFn fn, int64_t iters) {
  auto t0 = std::chrono::steady_clock::now();
  volatile float sink = fn(iters);
  (void)sink;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

FmaPeak measureFmaPeak(int threads, double seconds) {
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  auto jtmb = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!jtmb) throw std::runtime_error("cannot detect the host CPU");
  jtmb->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  FmaPeak r;
  r.vector_width = features.lookup("avx512f") ? 16 : 8;
  r.threads = std::max(1, threads);
  auto jit = llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(std::move(*jtmb)).create();
  if (!jit) {
    llvm::consumeError(jit.takeError());
    throw std::runtime_error("cannot create the JIT for the peak measurement");
  }
  auto ctx = std::make_unique<llvm::LLVMContext>();
  auto module = emitPeak(*ctx, r.vector_width);
  if (auto err = (*jit)->addIRModule(llvm::orc::ThreadSafeModule(std::move(module), std::move(ctx)))) {
    llvm::consumeError(std::move(err));
    throw std::runtime_error("cannot add the peak module");
  }
  auto sym = (*jit)->lookup("peak");
  if (!sym) {
    llvm::consumeError(sym.takeError());
    throw std::runtime_error("cannot compile the peak loop");
  }
  auto fn = sym->toPtr<PeakFn>();
  const double flops_per_iter = 2.0 * kChains * r.vector_width;
  // Calibrate the iteration count to about `seconds`, then take the best of 3.
  int64_t iters = 1 << 16;
  while (timeRun(fn, iters) < seconds / 10) iters *= 2;
  iters = int64_t(double(iters) * seconds / std::max(1e-6, timeRun(fn, iters)));
  double best = 1e30;
  for (int k = 0; k < 3; ++k) best = std::min(best, timeRun(fn, iters));
  r.gflops_1 = flops_per_iter * double(iters) / best / 1e9;
  if (r.threads == 1) {
    r.gflops_all = r.gflops_1;
    return r;
  }
  double best_all = 1e30;
  for (int k = 0; k < 3; ++k) {
    std::vector<std::thread> pool;
    std::vector<double> t(size_t(r.threads));
    for (int w = 0; w < r.threads; ++w) pool.emplace_back([&, w] { t[size_t(w)] = timeRun(fn, iters); });
    for (auto& th : pool) th.join();
    best_all = std::min(best_all, *std::max_element(t.begin(), t.end()));
  }
  r.gflops_all = flops_per_iter * double(iters) * r.threads / best_all / 1e9;
  return r;
}

} // namespace descent
