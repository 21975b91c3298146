// Sema unit tests: PyTorch defaults, accepted spellings, did-you-mean hints,
// and that error notes carry the information the user needs.
#include "compiler/frontend/frontend.h"
#include "compiler/frontend/sema.h"

#include <catch2/catch.hpp>

using namespace descent;

namespace {

const std::string kHead = "input x: f32[784]\ntarget y: class[10]\n";

std::optional<ModelSpec> check(const std::string& src, Diagnostics& d) {
  return analyzeSource("dir/my_model.nn", src, d);
}

ModelSpec checkOk(const std::string& src) {
  Diagnostics d("dir/my_model.nn", src);
  auto spec = check(src, d);
  INFO(d.render());
  REQUIRE(spec);
  REQUIRE_FALSE(d.hasErrors());
  return *spec;
}

std::string file(const std::string& model, const std::string& loss = "NLLLoss()",
                 const std::string& opt = "SGD(lr=0.1)", const std::string& extra = "") {
  return kHead + "model = " + model + "\nloss = " + loss + "\noptimizer = " + opt + "\n" + extra;
}

} // namespace

TEST_CASE("sema: PyTorch defaults") {
  ModelSpec s = checkOk(file("Sequential(Linear(784, 10), LeakyReLU(), Dropout(), Softmax())"));
  CHECK(s.name == "my_model");
  CHECK(s.path == "dir/my_model.nn");
  REQUIRE(s.layers.size() == 4);
  CHECK(s.layers[0].bias);
  CHECK(s.layers[1].negative_slope == Approx(0.01));
  CHECK(s.layers[2].p == Approx(0.5));
  CHECK(s.layers[3].dim == 1);
  CHECK(s.layers[3].index == 3);
  CHECK(s.loss.reduction == Reduction::Mean);
  CHECK(s.optimizer.kind == OptimizerKind::SGD);
  CHECK(s.optimizer.momentum == 0);
  CHECK_FALSE(s.optimizer.nesterov);
  CHECK(s.batch == 64);
  CHECK(s.epochs == 1);
  CHECK_FALSE(s.transform);

  ModelSpec a = checkOk(file("Sequential(Linear(784, 10))", "CrossEntropyLoss()", "Adam()"));
  CHECK(a.optimizer.kind == OptimizerKind::Adam);
  CHECK(a.optimizer.lr == Approx(0.001));
  CHECK(a.optimizer.beta1 == Approx(0.9));
  CHECK(a.optimizer.beta2 == Approx(0.999));
  CHECK(a.optimizer.eps == Approx(1e-8));
  CHECK(a.optimizer.weight_decay == 0);

  // torch.optim.AdamW: Adam's defaults except weight_decay=0.01.
  ModelSpec w = checkOk(file("Sequential(Linear(784, 10))", "CrossEntropyLoss()", "AdamW()"));
  CHECK(w.optimizer.kind == OptimizerKind::AdamW);
  CHECK(w.optimizer.lr == Approx(0.001));
  CHECK(w.optimizer.beta1 == Approx(0.9));
  CHECK(w.optimizer.beta2 == Approx(0.999));
  CHECK(w.optimizer.eps == Approx(1e-8));
  CHECK(w.optimizer.weight_decay == 0.01);
  ModelSpec w0 = checkOk(file("Sequential(Linear(784, 10))", "CrossEntropyLoss()", "AdamW(weight_decay=0)"));
  CHECK(w0.optimizer.weight_decay == 0);
  CHECK_FALSE(w0.optimizer.amsgrad);
  // amsgrad by keyword, and by position after weight_decay as in torch
  CHECK(checkOk(file("Sequential(Linear(784, 10))", "CrossEntropyLoss()", "Adam(amsgrad=True)"))
            .optimizer.amsgrad);
  CHECK(checkOk(file("Sequential(Linear(784, 10))", "CrossEntropyLoss()",
                     "AdamW(0.001, (0.9, 0.999), 1e-8, 0.01, True)"))
            .optimizer.amsgrad);

  // torch.optim.RMSprop(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False)
  ModelSpec r = checkOk(file("Sequential(Linear(784, 10))", "CrossEntropyLoss()", "RMSprop()"));
  CHECK(r.optimizer.kind == OptimizerKind::RMSprop);
  CHECK(r.optimizer.lr == 0.01);
  CHECK(r.optimizer.alpha == 0.99);
  CHECK(r.optimizer.eps == 1e-8);
  CHECK(r.optimizer.weight_decay == 0);
  CHECK(r.optimizer.momentum == 0);
  CHECK_FALSE(r.optimizer.centered);
  // By position, in torch's order.
  ModelSpec r2 = checkOk(file("Sequential(Linear(784, 10))", "CrossEntropyLoss()",
                              "RMSprop(0.1, 0.9, 1e-6, 0.01, 0.5, True)"));
  CHECK(r2.optimizer.lr == 0.1);
  CHECK(r2.optimizer.alpha == 0.9);
  CHECK(r2.optimizer.eps == 1e-6);
  CHECK(r2.optimizer.weight_decay == 0.01);
  CHECK(r2.optimizer.momentum == 0.5);
  CHECK(r2.optimizer.centered);
  ModelSpec ag = checkOk(file("Sequential(Linear(784, 10))", "CrossEntropyLoss()", "Adagrad()"));
  CHECK(ag.optimizer.kind == OptimizerKind::Adagrad);
  CHECK(ag.optimizer.lr == 0.01);
  CHECK(ag.optimizer.lr_decay == 0);
  CHECK(ag.optimizer.initial_accumulator_value == 0);
  CHECK(ag.optimizer.eps == 1e-10);
  // By position, in torch's order (lr, lr_decay, weight_decay, initial_accumulator_value, eps).
  ModelSpec ag2 = checkOk(file("Sequential(Linear(784, 10))", "CrossEntropyLoss()",
                               "Adagrad(0.1, 0.2, 0.3, 0.4, 1e-5)"));
  CHECK(ag2.optimizer.lr_decay == 0.2);
  CHECK(ag2.optimizer.weight_decay == 0.3);
  CHECK(ag2.optimizer.initial_accumulator_value == 0.4);
  CHECK(ag2.optimizer.eps == 1e-5);
  ModelSpec ad = checkOk(file("Sequential(Linear(784, 10))", "CrossEntropyLoss()", "Adadelta()"));
  CHECK(ad.optimizer.kind == OptimizerKind::Adadelta);
  CHECK(ad.optimizer.lr == 1.0);
  CHECK(ad.optimizer.rho == 0.9);
  CHECK(ad.optimizer.eps == 1e-6);
  ModelSpec ad2 = checkOk(file("Sequential(Linear(784, 10))", "CrossEntropyLoss()",
                               "Adadelta(0.5, 0.8, 1e-4, 0.01)"));
  CHECK(ad2.optimizer.rho == 0.8);
  CHECK(ad2.optimizer.eps == 1e-4);
  CHECK(ad2.optimizer.weight_decay == 0.01);
  // OneCycleLR without momentum cycling is fine on them.
  checkOk(file("Sequential(Linear(784, 10))", "CrossEntropyLoss()", "Adagrad()",
               "scheduler = OneCycleLR(optimizer, max_lr=0.1, cycle_momentum=False)\n"));
  // OneCycleLR cycles RMSprop's momentum (torch: 'momentum' in its defaults).
  ModelSpec r3 =
      checkOk(file("Sequential(Linear(784, 10))", "CrossEntropyLoss()", "RMSprop(momentum=0.5)",
                   "scheduler = OneCycleLR(optimizer, max_lr=0.1)\n"));
  CHECK(r3.optimizer.momentum == 0.95);
}

TEST_CASE("sema: Normalize takes one value or one per channel of a [C, H, W] input") {
  const std::string rgb = "input x: f32[3, 2, 2]\ntarget y: class[2]\n"
                          "model = Sequential(Flatten(), Linear(12, 2))\n"
                          "loss = CrossEntropyLoss()\noptimizer = SGD(lr=0.1)\n";
  ModelSpec s = checkOk(rgb + "transform = Normalize((0.5, 0.25, 0.125), [0.5, 0.25, 2])\n");
  REQUIRE(s.transform);
  CHECK(s.transform->mean == std::vector<double>{0.5, 0.25, 0.125});
  CHECK(s.transform->std == std::vector<double>{0.5, 0.25, 2.0});
  CHECK(s.transform->perChannel());
  // One value broadcasts to every channel, as torchvision's does.
  ModelSpec b = checkOk(rgb + "transform = Normalize(0.5, (0.5, 0.25, 2.0))\n");
  CHECK(b.transform->mean == std::vector<double>{0.5, 0.5, 0.5});
  CHECK(b.transform->perChannel());
  ModelSpec u = checkOk(rgb + "transform = Normalize((0.5, 0.5, 0.5), 0.5)\n");
  CHECK_FALSE(u.transform->perChannel()); // equal values: the single-pair form
}

TEST_CASE("sema: arguments by position and by keyword, Python spellings") {
  ModelSpec s = checkOk(file("Sequential(Linear(784, out_features=10, bias=False), LogSoftmax(dim=-1))",
                             "NLLLoss(reduction='sum')",
                             "SGD(1, 0.9, 0, 1e-4, True)", // ints accepted for floats
                             "transform = Normalize((0.1307,), std=(0.3081,))\nbatch = 128\nepochs = 3\n"));
  CHECK(s.layers[0].out_features == 10);
  CHECK_FALSE(s.layers[0].bias);
  CHECK(s.layers[1].dim == 1); // -1 is the feature axis of [batch, features]
  CHECK(s.loss.reduction == Reduction::Sum);
  CHECK(s.optimizer.lr == 1.0);
  CHECK(s.optimizer.momentum == Approx(0.9));
  CHECK(s.optimizer.weight_decay == Approx(1e-4));
  CHECK(s.optimizer.nesterov);
  REQUIRE(s.transform);
  CHECK(s.transform->mean.at(0) == Approx(0.1307));
  CHECK(s.transform->std.at(0) == Approx(0.3081));
  CHECK(s.batch == 128);
  CHECK(s.epochs == 3);
  ModelSpec t = checkOk(file("Sequential(Linear(784, 10))", "NLLLoss()",
                             "Adam(lr=3e-4, betas=[0.8, 0.9], eps=1e-6)"));
  CHECK(t.optimizer.beta1 == Approx(0.8));
  CHECK(t.optimizer.eps == Approx(1e-6));
}

TEST_CASE("sema: CrossEntropyLoss after a final LogSoftmax is accepted, like PyTorch") {
  ModelSpec s = checkOk(file("Sequential(Linear(784, 10), LogSoftmax(dim=1))", "CrossEntropyLoss()"));
  CHECK(s.loss.kind == LossKind::CrossEntropyLoss);
}

TEST_CASE("sema: did-you-mean") {
  CHECK(didYouMean("Relu", {"Linear", "ReLU", "Tanh"}) == "did you mean 'ReLU'?");
  CHECK(didYouMean("bais", {"in_features", "out_features", "bias"}) == "did you mean 'bias'?");
  CHECK(didYouMean("Linaer", {"Linear", "ReLU"}) == "did you mean 'Linear'?");
  CHECK(didYouMean("Conv2d", {"Linear", "ReLU"}).empty());
  CHECK(didYouMean("x", {"p"}).empty()); // a one-letter rewrite is not a suggestion
}

TEST_CASE("sema: hints point at the cause") {
  std::string src = file("Sequential(Linear(784, 10), Relu())", "NLLLoss()", "SGD(lr=0.1)",
                         "loss = NLLLoss()\n");
  Diagnostics d2("t.nn", src);
  CHECK_FALSE(check(src, d2));
  REQUIRE(d2.errors().size() == 2);
  CHECK(d2.errors()[0].hint == "did you mean 'ReLU'?");
  CHECK(d2.errors()[1].message == "duplicate 'loss' statement");
  CHECK(d2.errors()[1].loc.line == 6);
  CHECK(d2.errors()[1].hint == "the first 'loss' is at line 4");
  std::string r = d2.render();
  CHECK(r.find("note: did you mean 'ReLU'?\n") != std::string::npos);
}

TEST_CASE("sema: syntax errors do not hide semantic errors elsewhere") {
  std::string src = kHead + "model = Sequential(Linear(784, 10)\nloss = NLLLoss()\noptimizer = SGD(lr=0)\n";
  Diagnostics d("t.nn", src);
  CHECK_FALSE(check(src, d));
  REQUIRE(d.errors().size() == 2);
  CHECK(d.errors()[0].message == "'(' was never closed");
  CHECK(d.errors()[1].message == "SGD(): lr must be > 0, got 0");
  // The broken model statement is not reported missing.
}

TEST_CASE("sema: the shape chain is checked for every Linear") {
  std::string src = file("Sequential(Linear(784, 100), ReLU(), Linear(128, 64), Linear(60, 10))");
  Diagnostics d("t.nn", src);
  CHECK_FALSE(check(src, d));
  REQUIRE(d.errors().size() == 2);
  CHECK(d.errors()[0].message == "Linear(128, 64) expects 128 inputs but the previous layer gives 100");
  CHECK(d.errors()[1].message == "Linear(60, 10) expects 60 inputs but the previous layer gives 64");
}

TEST_CASE("sema: N-D inputs and Flatten follow torch.flatten's dimension rules") {
  auto withInput = [](const std::string& input, const std::string& layers,
                      const std::string& target = "class[10]") {
    return "input x: f32" + input + "\ntarget y: " + target + "\nmodel = Sequential(" + layers +
           ")\nloss = NLLLoss()\noptimizer = SGD(lr=0.1)\n";
  };
  ModelSpec s = checkOk(withInput("[3, 4, 5]", "ReLU(), Flatten(), Linear(60, 10)"));
  CHECK(s.input_shape == std::vector<int64_t>{3, 4, 5});
  CHECK(s.input_size == 60);
  CHECK(s.layers[0].out_shape == std::vector<int64_t>{3, 4, 5});
  CHECK(s.layers[1].out_shape == std::vector<int64_t>{60});
  CHECK(s.layers[1].start_dim == 1);
  CHECK(s.layers[1].end_dim == -1);
  CHECK(s.layers[2].out_shape == std::vector<int64_t>{10});
  // Negative dims count from the end, over the rank with the batch: [N, 3, 4, 5].
  s = checkOk(withInput("[3, 4, 5]", "Flatten(-2, -1), Flatten(1, 2), Linear(60, 10)"));
  CHECK(s.layers[0].out_shape == std::vector<int64_t>{3, 20});
  CHECK(s.layers[1].out_shape == std::vector<int64_t>{60});
  s = checkOk(withInput("[3, 4, 5]",
                        "Flatten(start_dim=2, end_dim=2), Flatten(end_dim=3), Linear(60, 10)"));
  CHECK(s.layers[0].out_shape == std::vector<int64_t>{3, 4, 5});
  // Flatten on flat features is PyTorch's no-op; f32[1, 28, 28] fits the default data.
  s = checkOk(withInput("[784]", "Flatten(), Linear(784, 10)"));
  CHECK(s.layers[0].out_shape == std::vector<int64_t>{784});
  CHECK(checkOk(withInput("[1, 28, 28]", "Flatten(), Linear(784, 10)")).fitsDefaultData());
  CHECK_FALSE(checkOk(withInput("[2, 28, 28]", "Flatten(), Linear(1568, 10)")).fitsDefaultData());

  std::string src = withInput("[1, 28, 28]", "Linear(28, 128), ReLU(), Linear(128, 10)");
  Diagnostics d("t.nn", src);
  CHECK_FALSE(check(src, d));
  REQUIRE(d.errors().size() == 1);
  CHECK(d.errors()[0].message ==
        "Linear(28, 128) needs a [batch, features] input but its input is [N, 1, 28, 28]");
  CHECK(d.errors()[0].hint == "add Flatten() before it (the input has 784 elements per sample)");
}
