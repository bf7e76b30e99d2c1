// libtorch's default random generator is one per process (MinTorch's is one per thread), so two test classes that
// run side by side and both call torch.manual_seed would draw from each other's stream: a seeded test would see
// numbers that depend on what else was running. The kit's and the chapters' tests therefore run one at a time.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
