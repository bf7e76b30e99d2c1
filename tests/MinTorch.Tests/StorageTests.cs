using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSharp.Tests;

/// <summary>Runs the pool's tests alone: a test running alongside could take the array one of them looks for, or
/// record ops that hold a storage back from the pool.</summary>
[CollectionDefinition("pool", DisableParallelization = true)]
public class PoolCollection { }

/// <summary>
/// The storage pool (shared/MinTorch/Storage.cs): dispose scopes and the backward pass hand large float storage back
/// for reuse, and nothing that is still needed is ever handed back.
/// </summary>
[Collection("pool")]
public class StorageTests
{
    // Sizes no other test uses.
    const int N = 12_347, M = 9_973;

    [Fact]
    public void A_closed_scope_hands_storage_back_and_the_next_tensor_reuses_it()
    {
        Tensor x;
        float[] array;
        using (NewDisposeScope())
        {
            x = randn(N);
            array = x.Arr<float>();
        }
        var e = Assert.Throws<ObjectDisposedException>(() => x.sum());
        Assert.Contains("MoveToOuterDisposeScope", e.Message);
        Assert.Contains($"[{N}]", e.Message);
        using (NewDisposeScope())
        {
            var y = empty(N);
            Assert.Same(array, y.Arr<float>());
        }
        Assert.True(StoragePool.Reused > 0);
    }

    [Fact]
    public void A_graph_never_back_propagated_holds_back_only_the_storage_made_before_it()
    {
        float[] before, after;
        var w = randn(8).requires_grad_();
        using (NewDisposeScope())
        {
            before = randn(26_000).Arr<float>();
            _ = (w * 2).sum();                                      // recorded after `before`, never back-propagated
            after = randn(31_000).Arr<float>();
        }
        using (NewDisposeScope())
        {
            Assert.Same(after, empty(31_000).Arr<float>());         // made after every op of the graph
            Assert.NotSame(before, empty(26_000).Arr<float>());     // the graph could have captured it
        }
    }

    [Fact]
    public void Without_a_scope_and_for_gradients_memory_is_left_to_the_garbage_collector()
    {
        // Nothing would give such storage back, and a pooled array that is dropped costs more than a plain one.
        var w = randn(new long[] { 128, 96 }).requires_grad_();
        Assert.Null(StoragePool.OwnerOf(w.Arr<float>()));
        using (NewDisposeScope())
        {
            Assert.NotNull(StoragePool.OwnerOf(randn(N).Arr<float>()));
            (w * w).sum().backward();
            (w * 3).sum().backward();
        }
        Assert.Null(StoragePool.OwnerOf(w.grad!.Arr<float>()));                 // a leaf's .grad outlives scopes
        Assert.Equal((w * 2 + 3).data<float>().ToArray(), w.grad.data<float>().ToArray());
    }

    [Fact]
    public void Sizes_round_up_by_at_most_an_eighth()
    {
        int last = 0;
        for (int n = StoragePool.MinLength; n < 3_000_000; n += n / 7 + 1)
        {
            int c = StoragePool.Capacity(n);
            Assert.InRange(c, n, n + n / 8);
            Assert.True(c >= last, $"capacity {c} of {n} is below the one before ({last})");
            last = c;
        }
        Assert.Equal(20_480, StoragePool.Capacity(20_000));          // 16,384 ≤ n < 32,768: multiples of 2,048
        Assert.Equal(20_480, StoragePool.Capacity(20_480));
    }

    [Fact]
    public void A_tensor_on_a_longer_array_reads_and_writes_only_its_own_elements()
    {
        float[] array;
        using (NewDisposeScope())
        {
            var junk = full(20_480, float.NaN);                     // fills the whole array of 20,480
            array = junk.Arr<float>();
        }
        using var _ = NewDisposeScope();
        var y = ones(20_000);                                       // the same array, 480 NaNs past its end
        Assert.Same(array, y.Arr<float>());
        Assert.Equal(20_000f, y.sum().item<float>());
        Assert.Equal(1f, y.softmax(0).sum().item<float>(), 4);
        Assert.Equal(20_000, y.data<float>().ToArray().Length);
        Assert.Equal(20_000f, y.cumsum(0)[-1].item<float>());
    }

    [Fact]
    public void Moved_out_tensors_and_their_views_keep_their_storage()
    {
        Tensor moved, view;
        float[] expected;
        using (var scope = NewDisposeScope())
        {
            var x = randn(M);
            expected = x.data<float>().ToArray();
            view = x.view(1, M).MoveToOuterDisposeScope();       // shares x's storage; x itself is disposed
            moved = scope.MoveToOuter(randn(M));
        }
        Assert.Equal(expected, view.data<float>().ToArray());
        using (NewDisposeScope())
        {
            var other = empty(M);                                  // must not get view's array
            Assert.NotSame(view.Arr<float>(), other.Arr<float>());
            Assert.NotSame(moved.Arr<float>(), other.Arr<float>());
        }
        Assert.Equal(M, moved.numel());
    }

    [Fact]
    public void Parameters_gradients_buffers_and_optimizer_state_outlive_the_step_scope()
    {
        var lin = nn.Linear(96, 128);                              // weight: 12,288 elements, pooled
        var opt = optim.AdamW(lin.parameters(), lr: 1e-3);
        for (int step = 0; step < 3; step++)
        {
            using var _ = NewDisposeScope();
            opt.zero_grad();
            lin.call(ones(64, 96)).pow(2).mean().backward();
            opt.step();
        }
        Assert.True(float.IsFinite(lin.weight!.sum().item<float>()));
        Assert.NotNull(lin.weight.grad);
        Assert.True(float.IsFinite(lin.weight.grad!.sum().item<float>()));
    }

    [Fact]
    public void A_graph_moved_out_of_its_scope_still_back_propagates_exactly()
    {
        // The loss leaves the scope that built its graph; the tensors its backward functions captured (softmax's
        // output, the ReLU mask, the matmul inputs) were disposed with the scope but must not be reused before the
        // backward pass: the scopes in between allocate the same sizes to tempt the pool.
        var w1 = Build(out var w2);
        var reference = Gradients(w1, w2, scoped: false);
        var scoped = Gradients(w1, w2, scoped: true);
        Assert.Equal(reference.g1, scoped.g1);
        Assert.Equal(reference.g2, scoped.g2);
    }

    static Tensor Build(out Tensor w2)
    {
        var g = new Generator(3);
        w2 = randn(new long[] { 128, 64 }, generator: g).requires_grad_();
        return randn(new long[] { 64, 128 }, generator: g).requires_grad_();
    }

    static (float[] g1, float[] g2) Gradients(Tensor w1, Tensor w2, bool scoped)
    {
        w1.grad = null; w2.grad = null;
        var x = randn(new long[] { 96, 64 }, generator: new Generator(4));
        Tensor loss;
        using (var scope = NewDisposeScope())
        {
            var h = x.matmul(w1).relu();                           // (96, 128)
            var p = h.matmul(w2).softmax(-1);                      // (96, 64)
            loss = (p * x).sum().MoveToOuterDisposeScope();
            if (!scoped) scope.Detach(loss);
        }
        for (int i = 0; i < 3; i++)
            using (NewDisposeScope()) { _ = randn(96, 128) + 1; _ = randn(96, 64) * 2; }
        loss.backward();
        return (w1.grad!.data<float>().ToArray(), w2.grad!.data<float>().ToArray());
    }

    [Fact]
    public void A_second_backward_through_the_same_graph_needs_retain_graph()
    {
        var x = randn(N).requires_grad_();
        var y = (x * x).sum();
        y.backward();
        var e = Assert.Throws<InvalidOperationException>(() => y.backward());
        Assert.Contains("retain_graph", e.Message);

        x.grad = null;
        var z = (x * x).sum();
        z.backward(null, retain_graph: true);
        z.backward();
        Assert.Equal((x * 4).data<float>().ToArray(), x.grad!.data<float>().ToArray());   // 2x twice
    }

    [Fact]
    public void Training_in_scopes_is_bit_identical_to_training_without_on_one_thread_and_all()
    {
        long reusedBefore = StoragePool.Reused;
        var plain = Train(scoped: false, threads: 1);
        var scoped1 = Train(scoped: true, threads: 1);
        var scopedAll = Train(scoped: true, threads: Environment.ProcessorCount * 2);
        Assert.Equal(plain, scoped1);
        Assert.Equal(plain, scopedAll);
        Assert.True(StoragePool.Reused > reusedBefore, "the scoped runs reused no storage");
    }

    /// <summary>Four AdamW steps of a two-layer MLP with a cross-entropy loss; the parameters afterwards.</summary>
    static float[] Train(bool scoped, int threads)
    {
        int saved = get_num_threads();
        try
        {
            set_num_threads(threads);
            manual_seed(11);
            var model = nn.Sequential(nn.Linear(48, 160), nn.GELU(), nn.LayerNorm(160), nn.Linear(160, 40));
            var opt = optim.AdamW(model.parameters(), lr: 1e-2, weight_decay: 0.01);
            var x = randn(new long[] { 128, 48 }, generator: new Generator(12));
            var y = randint(0, 40, new long[] { 128 }, generator: new Generator(13));
            for (int step = 0; step < 4; step++)
            {
                using var scope = scoped ? NewDisposeScope() : null;
                opt.zero_grad();
                nn.functional.cross_entropy(model.call(x), y).backward();
                opt.step();
            }
            return model.parameters().SelectMany(p => p.data<float>().ToArray()).ToArray();
        }
        finally { set_num_threads(saved); }
    }
}
