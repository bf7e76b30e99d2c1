using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace TorchSharp;

/// <summary>
/// Kernels for softmax, log_softmax and logsumexp over one dim of a contiguous tensor, seen as
/// (outer, n, inner) with the reduced dim in the middle. When inner = 1 (the last dim — attention
/// scores, logits) every reduction is a contiguous row; otherwise whole inner rows are combined
/// elementwise, in blocks of <see cref="Block"/> columns. Work items are rows or (row, block) pairs,
/// fixed by the shape, so results are bit-identical for any thread count.
/// </summary>
internal static class SoftmaxKernels<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private const int Block = 256;

    private struct ExpOp : VecMath.IUnary<T>
    {
        public Vector256<T> Invoke(Vector256<T> x) => VecMath.Exp(x);
    }

    /// <summary>y = e^(x − m) (y may be empty: then nothing is stored); returns Σ e^(x − m).</summary>
    private static T ExpShiftedSum(ReadOnlySpan<T> x, T m, Span<T> y)
    {
        int n = x.Length, w = Vector256<T>.Count, i = 0;
        bool store = !y.IsEmpty;
        var vm = Vector256.Create(m);
        var acc = Vector256<T>.Zero;
        for (; i <= n - w; i += w)
        {
            var e = VecMath.Exp(Vector256.Create(x.Slice(i, w)) - vm);
            acc += e;
            if (store) e.CopyTo(y.Slice(i, w));
        }
        T s = Vector256.Sum(acc);
        for (; i < n; i++)
        {
            T e = T.Exp(x[i] - m);
            s += e;
            if (store) y[i] = e;
        }
        return s;
    }

    /// <summary>Runs body(o, c0, c1) for every outer index o and column block [c0, c1) of the inner dim.</summary>
    private static void ForBlocks(int outer, int n, int inner, Action<int, int, int> body)
    {
        int blocks = (inner + Block - 1) / Block;
        Par.For(outer * blocks, Par.Grain((long)n * Math.Min(inner, Block), 16384), (s, e) =>
        {
            for (int item = s; item < e; item++)
            {
                int o = item / blocks, b = item % blocks;
                body(o, b * Block, Math.Min(inner, (b + 1) * Block));
            }
        });
    }

    /// <summary>y ← c·y.</summary>
    private static void Scale(Span<T> y, T c)
    {
        int n = y.Length, w = Vector256<T>.Count, i = 0;
        var vc = Vector256.Create(c);
        for (; i <= n - w; i += w) (Vector256.Create((ReadOnlySpan<T>)y.Slice(i, w)) * vc).CopyTo(y.Slice(i, w));
        for (; i < n; i++) y[i] *= c;
    }

    /// <summary>y = (x − a) − b: subtracting the max first keeps log_softmax exact where x ≈ max.</summary>
    private static void SubtractTwice(ReadOnlySpan<T> x, T a, T b, Span<T> y)
    {
        int n = x.Length, w = Vector256<T>.Count, i = 0;
        var va = Vector256.Create(a); var vb = Vector256.Create(b);
        for (; i <= n - w; i += w) (Vector256.Create(x.Slice(i, w)) - va - vb).CopyTo(y.Slice(i, w));
        for (; i < n; i++) y[i] = x[i] - a - b;
    }

    // =====================================================================================
    // Forward: m = max, s = Σ e^(x − m);  softmax = e^(x − m)/s,  log_softmax = (x − m) − log s.
    // Subtracting the max makes every exponent ≤ 0, so nothing overflows.
    // =====================================================================================

    public static void Forward(T[] X, T[] Y, int outer, int n, int inner, bool log)
    {
        if (inner == 1)
        {
            Par.For(outer, Par.Grain(n, 16384), (r0, r1) =>
            {
                var scratch = log ? new T[n] : null;
                for (int r = r0; r < r1; r++)
                {
                    var x = new ReadOnlySpan<T>(X, r * n, n);
                    var y = new Span<T>(Y, r * n, n);
                    T m = TensorPrimitives.Max(x);
                    if (log)
                    {
                        T s = ExpShiftedSum(x, m, scratch);
                        SubtractTwice(x, m, T.Log(s), y);
                    }
                    else
                    {
                        T s = ExpShiftedSum(x, m, y);
                        Scale(y, T.One / s);
                    }
                }
            });
            return;
        }
        ForBlocks(outer, n, inner, (o, c0, c1) =>
        {
            int w = c1 - c0;
            Span<T> m = stackalloc T[w], s = stackalloc T[w], e = stackalloc T[w];
            new ReadOnlySpan<T>(X, o * n * inner + c0, w).CopyTo(m);
            for (int k = 1; k < n; k++) TensorPrimitives.Max(m, new ReadOnlySpan<T>(X, (o * n + k) * inner + c0, w), m);
            s.Clear();
            for (int k = 0; k < n; k++)
            {
                var x = new ReadOnlySpan<T>(X, (o * n + k) * inner + c0, w);
                var y = log ? e : new Span<T>(Y, (o * n + k) * inner + c0, w);
                TensorPrimitives.Subtract(x, m, y);
                VecMath.Map<T, ExpOp>(y, y, default);
                TensorPrimitives.Add(s, y, s);
            }
            if (log)
            {
                VecMath.Map<T, LogOp>(s, s, default);                      // s ← log s
                for (int k = 0; k < n; k++)
                {
                    var y = new Span<T>(Y, (o * n + k) * inner + c0, w);
                    TensorPrimitives.Subtract(new ReadOnlySpan<T>(X, (o * n + k) * inner + c0, w), m, y);
                    TensorPrimitives.Subtract(y, s, y);
                }
            }
            else
            {
                TensorPrimitives.Reciprocal(s, s);
                for (int k = 0; k < n; k++)
                {
                    var y = new Span<T>(Y, (o * n + k) * inner + c0, w);
                    TensorPrimitives.Multiply(y, s, y);
                }
            }
        });
    }

    private struct LogOp : VecMath.IUnary<T>
    {
        public Vector256<T> Invoke(Vector256<T> x) => VecMath.Log(x);
    }

    /// <summary>logsumexp: Y[o, i] = m + log Σₖ e^(x − m), with m = max (taken as 0 when it is ±∞, as PyTorch
    /// does, so a row of −∞ gives −∞ and a row containing +∞ gives +∞ rather than NaN).</summary>
    public static void LogSumExp(T[] X, T[] Y, int outer, int n, int inner)
    {
        static T Shift(T m) => T.IsInfinity(m) ? T.Zero : m;
        if (inner == 1)
        {
            Par.For(outer, Par.Grain(n, 16384), (r0, r1) =>
            {
                for (int r = r0; r < r1; r++)
                {
                    var x = new ReadOnlySpan<T>(X, r * n, n);
                    T m = n == 0 ? T.NegativeInfinity : Shift(TensorPrimitives.Max(x));
                    Y[r] = m + T.Log(ExpShiftedSum(x, m, default));
                }
            });
            return;
        }
        ForBlocks(outer, n, inner, (o, c0, c1) =>
        {
            int w = c1 - c0;
            Span<T> m = stackalloc T[w], s = stackalloc T[w], e = stackalloc T[w];
            new ReadOnlySpan<T>(X, o * n * inner + c0, w).CopyTo(m);
            for (int k = 1; k < n; k++) TensorPrimitives.Max(m, new ReadOnlySpan<T>(X, (o * n + k) * inner + c0, w), m);
            for (int i = 0; i < w; i++) m[i] = Shift(m[i]);
            s.Clear();
            for (int k = 0; k < n; k++)
            {
                TensorPrimitives.Subtract(new ReadOnlySpan<T>(X, (o * n + k) * inner + c0, w), m, e);
                VecMath.Map<T, ExpOp>(e, e, default);
                TensorPrimitives.Add(s, e, s);
            }
            var y = new Span<T>(Y, o * inner + c0, w);
            VecMath.Map<T, LogOp>(s, y, default);
            TensorPrimitives.Add(y, m, y);
        });
    }

    /// <summary>One row of the softmax backward: d = Σ g·y, then dx = (g − d)·y (two passes, the second from L1).</summary>
    private static void SoftmaxRowBackward(ReadOnlySpan<T> g, ReadOnlySpan<T> y, Span<T> dx)
    {
        int n = g.Length, w = Vector256<T>.Count, i = 0;
        ref T gr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(g);
        ref T yr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(y);
        ref T dr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(dx);
        var a0 = Vector256<T>.Zero; var a1 = Vector256<T>.Zero;
        for (; i <= n - 2 * w; i += 2 * w)
        {
            a0 = VecMath.Fma(Vector256.LoadUnsafe(ref gr, (nuint)i), Vector256.LoadUnsafe(ref yr, (nuint)i), a0);
            a1 = VecMath.Fma(Vector256.LoadUnsafe(ref gr, (nuint)(i + w)), Vector256.LoadUnsafe(ref yr, (nuint)(i + w)), a1);
        }
        T d = Vector256.Sum(a0 + a1);
        for (; i < n; i++) d += g[i] * y[i];
        var vd = Vector256.Create(d);
        for (i = 0; i <= n - w; i += w)
            ((Vector256.LoadUnsafe(ref gr, (nuint)i) - vd) * Vector256.LoadUnsafe(ref yr, (nuint)i)).StoreUnsafe(ref dr, (nuint)i);
        for (; i < n; i++) dx[i] = (g[i] - d) * y[i];
    }

    // =====================================================================================
    // Fused backward passes (used when the backward itself is not being recorded).
    //   softmax:      dx = y ⊙ (g − Σₖ g⊙y)
    //   log_softmax:  dx = g − e^y · Σₖ g
    // =====================================================================================

    public static void Backward(T[] G, T[] Yv, T[] DX, int outer, int n, int inner, bool log)
    {
        if (inner == 1)
        {
            Par.For(outer, Par.Grain(n, 16384), (r0, r1) =>
            {
                for (int r = r0; r < r1; r++)
                {
                    var g = new ReadOnlySpan<T>(G, r * n, n);
                    var y = new ReadOnlySpan<T>(Yv, r * n, n);
                    var dx = new Span<T>(DX, r * n, n);
                    int w = Vector256<T>.Count, i = 0;
                    if (log)
                    {
                        T s = TensorPrimitives.Sum(g);                         // dx = g − s·e^y
                        var vs = Vector256.Create(s);
                        for (; i <= n - w; i += w)
                            (Vector256.Create(g.Slice(i, w)) - vs * VecMath.Exp(Vector256.Create(y.Slice(i, w)))).CopyTo(dx.Slice(i, w));
                        for (; i < n; i++) dx[i] = g[i] - s * T.Exp(y[i]);
                    }
                    else SoftmaxRowBackward(g, y, dx);
                }
            });
            return;
        }
        ForBlocks(outer, n, inner, (o, c0, c1) =>
        {
            int w = c1 - c0;
            Span<T> acc = stackalloc T[w];
            acc.Clear();
            for (int k = 0; k < n; k++)
            {
                var g = new ReadOnlySpan<T>(G, (o * n + k) * inner + c0, w);
                if (log) TensorPrimitives.Add(acc, g, acc);
                else TensorPrimitives.MultiplyAdd(g, new ReadOnlySpan<T>(Yv, (o * n + k) * inner + c0, w), acc, acc);
            }
            for (int k = 0; k < n; k++)
            {
                int off = (o * n + k) * inner + c0;
                var g = new ReadOnlySpan<T>(G, off, w);
                var y = new ReadOnlySpan<T>(Yv, off, w);
                var dx = new Span<T>(DX, off, w);
                if (log)
                {
                    VecMath.Map<T, ExpOp>(y, dx, default);
                    TensorPrimitives.Multiply(dx, acc, dx);
                    TensorPrimitives.Subtract(g, dx, dx);
                }
                else
                {
                    TensorPrimitives.Subtract(g, acc, dx);
                    TensorPrimitives.Multiply(dx, y, dx);
                }
            }
        });
    }
}

public static partial class torch
{
    public partial class Tensor
    {
        private (int outer, int n, int inner, int dim) SoftmaxLayout(long dim, string op)
        {
            if (!IsFloat) throw new ArgumentException($"{op}: expected a floating-point tensor, got {_dtype} (convert with .to_type(torch.float32))");
            int d = Shapes.Dim(dim, Rank, op);
            var (outer, n, inner) = Shapes.Split(_shape, d);
            return (outer, n, inner, d);
        }

        /// <summary>
        /// Softmax along <paramref name="dim"/>: y = e^(x − max) / Σ e^(x − max) (the max is subtracted
        /// for stability and cancels).   Backward: dx = y ⊙ (g − Σ g⊙y), the Jacobian diag(y) − y yᵀ applied to g.
        /// </summary>
        public Tensor softmax(long dim, ScalarType? dtype = null)
        {
            var x = dtype is ScalarType t && t != _dtype ? to_type(t) : this;
            var (outer, n, inner, d) = x.SoftmaxLayout(dim, "softmax");
            var y = Empty(x._shape, x._dtype);
            if (x._numel == 0) return y;
            if (x._dtype == ScalarType.Float32) SoftmaxKernels<float>.Forward(x.Arr<float>(), y.Arr<float>(), outer, n, inner, log: false);
            else SoftmaxKernels<double>.Forward(x.Arr<double>(), y.Arr<double>(), outer, n, inner, log: false);
            return Autograd.Record(y, "softmax", x, g =>
            {
                if (!is_grad_enabled()) return SoftmaxBackward(g, y, outer, n, inner, log: false);
                var gy = g.mul(y);
                return gy.sub(y.mul(gy.sum(d, keepdim: true)));
            });
        }

        /// <summary>
        /// log_softmax along <paramref name="dim"/>: y = (x − max) − log Σ e^(x − max), finite even for huge logits.
        ///   Backward: dx = g − softmax(x)·Σ g = g − e^y·Σ g.
        /// </summary>
        public Tensor log_softmax(long dim, ScalarType? dtype = null)
        {
            var x = dtype is ScalarType t && t != _dtype ? to_type(t) : this;
            var (outer, n, inner, d) = x.SoftmaxLayout(dim, "log_softmax");
            var y = Empty(x._shape, x._dtype);
            if (x._numel == 0) return y;
            if (x._dtype == ScalarType.Float32) SoftmaxKernels<float>.Forward(x.Arr<float>(), y.Arr<float>(), outer, n, inner, log: true);
            else SoftmaxKernels<double>.Forward(x.Arr<double>(), y.Arr<double>(), outer, n, inner, log: true);
            return Autograd.Record(y, "log_softmax", x, g =>
            {
                if (!is_grad_enabled()) return SoftmaxBackward(g, y, outer, n, inner, log: true);
                return g.sub(y.exp().mul(g.sum(d, keepdim: true)));
            });
        }

        /// <summary>The fused backward kernels (no graph is being built, so one pass is enough).</summary>
        private static Tensor SoftmaxBackward(Tensor g, Tensor y, int outer, int n, int inner, bool log)
        {
            if (g._dtype != y._dtype) g = g.to_type(y._dtype);
            var dx = Empty(y._shape, y._dtype);
            if (y._dtype == ScalarType.Float32) SoftmaxKernels<float>.Backward(g.Arr<float>(), y.Arr<float>(), dx.Arr<float>(), outer, n, inner, log);
            else SoftmaxKernels<double>.Backward(g.Arr<double>(), y.Arr<double>(), dx.Arr<double>(), outer, n, inner, log);
            return dx;
        }

        /// <summary>
        /// y = log Σ e^x along <paramref name="dim"/>, computed as m + log Σ e^(x − m) with m the max.
        ///   ∂y/∂x = e^(x − y) = softmax(x): the gradient is g·softmax(x).
        /// </summary>
        public Tensor logsumexp(long dim, bool keepdim = false)
        {
            var x = this;
            var (outer, n, inner, d) = x.SoftmaxLayout(dim, "logsumexp");
            var kept = x.KeptShape([d]);
            var y = Empty(kept, x._dtype);
            if (n == 0) y.fill_(double.NegativeInfinity);
            else if (x._dtype == ScalarType.Float32) SoftmaxKernels<float>.LogSumExp(x.Arr<float>(), y.Arr<float>(), outer, n, inner);
            else SoftmaxKernels<double>.LogSumExp(x.Arr<double>(), y.Arr<double>(), outer, n, inner);
            if (!keepdim) y = new Tensor(y._storage, x.ReducedShape([d]), y._dtype);
            var yk = y;
            return Autograd.Record(y, "logsumexp", x, g => g.reshape(kept).mul(x.sub(yk.reshape(kept)).exp()));
        }
    }

    /// <summary>Softmax along <paramref name="dim"/> (see <see cref="Tensor.softmax"/>).</summary>
    public static Tensor softmax(Tensor input, long dim, ScalarType? dtype = null) => input.softmax(dim, dtype);
    /// <summary>log_softmax along <paramref name="dim"/>.</summary>
    public static Tensor log_softmax(Tensor input, long dim, ScalarType? dtype = null) => input.log_softmax(dim, dtype);
    /// <summary>log Σ e^x along <paramref name="dim"/>.</summary>
    public static Tensor logsumexp(Tensor input, long dim, bool keepdim = false) => input.logsumexp(dim, keepdim);

    public static partial class nn
    {
        public static partial class functional
        {
            /// <summary>Softmax along <paramref name="dim"/>, optionally after converting to <paramref name="dtype"/>.</summary>
            public static Tensor softmax(Tensor input, long dim, ScalarType? dtype = null) => input.softmax(dim, dtype);

            /// <summary>log_softmax along <paramref name="dim"/>.</summary>
            public static Tensor log_softmax(Tensor x, long dim) => x.log_softmax(dim);
        }
    }
}
