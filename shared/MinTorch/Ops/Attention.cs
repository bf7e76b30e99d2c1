using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace TorchSharp;

public static partial class torch
{
    public static partial class nn
    {
        public static partial class functional
        {
            /// <summary>
            /// Attention(Q, K, V) = softmax(Q Kᵀ / √D + mask) V, over the last two dims:
            /// query (…, T, D), key (…, L, D) and value (…, L, Dv) → (…, T, Dv).
            /// </summary>
            /// <remarks>
            /// <para><paramref name="attn_mask"/> is either bool (true = may attend, as in PyTorch) or float (added to
            /// the scores), and broadcasts to the scores (…, T, L). <paramref name="is_casual"/> lets query i see keys
            /// 0..i only (top-left aligned, as PyTorch's definition). TorchSharp 0.107 spells PyTorch's
            /// <c>is_causal</c> as <c>is_casual</c>; MinTorch keeps that spelling, so a call compiles on both.</para>
            /// <para>With P = softmax(S), S = Q Kᵀ/√D (+ mask), and g = ∂L/∂Y:
            /// dV = Pᵀ g,  dP = g Vᵀ,  dS = P ⊙ (dP − Σ_j dP ⊙ P),  dQ = dS K / √D,  dK = dSᵀ Q / √D.</para>
            /// <para>When query, key and value share their batch dims, this runs as one fused kernel per
            /// (batch, head): scores, mask, softmax and P·V in one pass, without building a (T, L) mask
            /// tensor or the intermediate score tensors (see <see cref="Attention"/>). Other cases (broadcast
            /// batch dims, a float mask that requires grad) use <see cref="Attention.Composite"/>, the same
            /// formula written with the engine's differentiable ops.</para>
            /// </remarks>
            public static Tensor scaled_dot_product_attention(Tensor query, Tensor key, Tensor value, Tensor? attn_mask = null, double p = 0.0, bool is_casual = false)
            {
                const string op = "scaled_dot_product_attention";
                bool is_causal = is_casual;
                if (p != 0.0) throw new ArgumentException($"{op}: dropout (p > 0) is not supported by MinTorch");
                if (query.Rank < 2 || key.Rank < 2 || value.Rank < 2)
                    throw new ArgumentException($"{op}: query, key and value need at least 2 dims, got {query.ShapeString}, {key.ShapeString}, {value.ShapeString}");
                long T = query._shape[^2], L = key._shape[^2], D = query._shape[^1];
                if (key._shape[^1] != D || value._shape[^2] != L)
                    throw new ArgumentException($"{op}: shapes do not fit: query {query.ShapeString}, key {key.ShapeString}, value {value.ShapeString}");
                if (is_causal && attn_mask is not null)
                    throw new ArgumentException($"{op}: pass either attn_mask or is_causal, not both");
                if (attn_mask is not null)
                {
                    long[] scores;
                    try { scores = [.. Shapes.Broadcast(query._shape[..^2], key._shape[..^2], op), T, L]; }
                    catch (ArgumentException) { scores = [T, L]; } // the matmul below names the shapes
                    bool fits;
                    try { fits = Shapes.Equal(Shapes.Broadcast(attn_mask._shape, scores, op), scores); }
                    catch (ArgumentException) { fits = false; }
                    if (!fits)
                        throw new ArgumentException($"{op}: the mask of shape {attn_mask.ShapeString} does not broadcast to the attention scores' shape {Shapes.Str(scores)} (query {query.ShapeString}, key {key.ShapeString})");
                }
                return Attention.CanFuse(query, key, value, attn_mask)
                    ? Attention.Fused(query, key, value, attn_mask, is_causal)
                    : Attention.Composite(query, key, value, attn_mask, is_causal);
            }
        }
    }
}

/// <summary>
/// The fused attention kernel behind <see cref="torch.nn.functional.scaled_dot_product_attention"/>.
/// </summary>
/// <remarks>
/// <para>For each (batch, head) item — one thread per item, items spread over the threads — and each query
/// row i: s_j = (q_i · k_j)/√D, masked keys get −∞ (or the float mask is added), p = softmax(s), and
/// y_i = Σ_j p_j v_j. Long rows use the GEMM kernel for Q Kᵀ and P V, short ones (the single query of a
/// KV-cache step) plain dot products and row updates. Every item is computed by one thread in a fixed
/// order, so the result does not depend on the thread count.</para>
/// <para>Keys that no query may see — the unfilled tail of a preallocated KV cache, hidden by the mask —
/// are skipped: the kernel only reads keys 0 .. Leff − 1, where Leff − 1 is the last key any query may see.
/// Their weight would have been exactly 0, so the result is the same as attending over all L keys.</para>
/// <para>Backward: P is kept from the forward (only when a gradient is wanted). Without create_graph the
/// three gradients come from one fused pass per item (dP, dS, then dQ, dK, dV with the GEMM kernel); with
/// create_graph, P is recomputed with differentiable ops and the same formulas are written as tensor ops,
/// so the gradient can be differentiated again.</para>
/// </remarks>
internal static class Attention
{
    private const string Op = "scaled_dot_product_attention";

    /// <summary>The reference: the formula written with the engine's differentiable ops.</summary>
    internal static torch.Tensor Composite(torch.Tensor query, torch.Tensor key, torch.Tensor value, torch.Tensor? mask, bool causal)
        => Probabilities(query, key, mask, causal).matmul(value);                            // (…, T, Dv)

    /// <summary>P = softmax(Q Kᵀ/√D + mask), with differentiable ops: (…, T, L).</summary>
    private static torch.Tensor Probabilities(torch.Tensor query, torch.Tensor key, torch.Tensor? mask, bool causal)
    {
        long T = query._shape[^2], L = key._shape[^2], D = query._shape[^1];
        var scores = query.matmul(key.transpose(-2, -1)).mul(1.0 / Math.Sqrt(D));          // (…, T, L)
        if (causal) mask = torch.ones(T, L, dtype: ScalarType.Bool).tril();                 // (T, L)
        if (mask is not null)
        {
            scores = mask._dtype == ScalarType.Bool
                ? scores.masked_fill(mask.logical_not(), double.NegativeInfinity)
                : scores + mask;
        }
        return scores.softmax(-1);
    }

    /// <summary>The fused kernel needs one dtype, equal batch dims, and a mask that is a constant
    /// (bool, or float of the same dtype, not requiring grad).</summary>
    internal static bool CanFuse(torch.Tensor q, torch.Tensor k, torch.Tensor v, torch.Tensor? mask)
    {
        if (!q.IsFloat || k._dtype != q._dtype || v._dtype != q._dtype) return false;
        if (q.Rank != k.Rank || q.Rank != v.Rank) return false;
        for (int a = 0; a < q.Rank - 2; a++)
            if (q._shape[a] != k._shape[a] || q._shape[a] != v._shape[a]) return false;
        if (q._numel == 0 || k._numel == 0 || v._numel == 0) return false;
        if (mask is not null && mask._dtype != ScalarType.Bool && (mask._dtype != q._dtype || mask.requires_grad)) return false;
        return true;
    }

    /// <summary>How a row's keys are masked: not at all, causally, or by a (T, L) mask per item (or shared).</summary>
    private readonly record struct Mask(Array? Values, bool IsBool, bool Causal, long ItemStride)
    {
        public static readonly Mask None = new(null, false, false, 0);
    }

    internal static torch.Tensor Fused(torch.Tensor q, torch.Tensor k, torch.Tensor v, torch.Tensor? attn_mask, bool causal)
    {
        int T = (int)q._shape[^2], L = (int)k._shape[^2], D = (int)q._shape[^1], Dv = (int)v._shape[^1];
        var batch = q._shape[..^2];
        int items = checked((int)Shapes.Numel(batch));

        // The mask as a (T, L) matrix shared by every item, or one per item.
        var mask = Mask.None;
        if (causal) mask = new Mask(null, false, true, 0);
        else if (attn_mask is not null)
        {
            var m = attn_mask.detach();
            while (m.Rank > 2 && m._shape[0] == 1) m = m.reshape(m._shape[1..]);         // leading 1s: shared
            bool shared = m.Rank <= 2;
            long[] full = shared ? [T, L] : [.. batch, T, L];
            if (!Shapes.Equal(m._shape, full)) m = m.expand(full);                         // a copy, mask-sized
            mask = new Mask(m._storage, m._dtype == ScalarType.Bool, false, shared ? 0 : (long)T * L);
        }

        // Keys after the last one any query may see are skipped (the empty tail of a KV cache).
        int leff = LastVisibleKey(mask, T, L, items) + 1;
        if (leff == 0) leff = L;                     // every key hidden from every query: NaN rows, as softmax(−∞…) gives
        bool needGrad = Autograd.GradEnabled && (q.requires_grad || k.requires_grad || v.requires_grad);
        if (leff < L && needGrad)
        {
            // Let narrow's backward put the zero gradients of the skipped keys in place.
            var mk = attn_mask is null ? null : attn_mask._shape[^1] == 1 ? attn_mask : attn_mask.narrow(-1, 0, leff);
            return Fused(q, k.narrow(-2, 0, leff), v.narrow(-2, 0, leff), mk, causal);
        }

        var y = torch.Tensor.Empty([.. batch, T, Dv], q._dtype);
        var probs = needGrad ? torch.Tensor.Empty([.. batch, T, leff], q._dtype) : null;
        if (q._dtype == ScalarType.Float32)
            Kernels<float>.Forward(q.Arr<float>(), k.Arr<float>(), v.Arr<float>(), y.Arr<float>(), probs?.Arr<float>(), mask, items, T, L, leff, D, Dv);
        else
            Kernels<double>.Forward(q.Arr<double>(), k.Arr<double>(), v.Arr<double>(), y.Arr<double>(), probs?.Arr<double>(), mask, items, T, L, leff, D, Dv);
        if (!needGrad) return y;

        var bw = new Backward(q, k, v, attn_mask, causal, probs!, items, T, L, D, Dv);
        return Autograd.Record(y, Op, [q, k, v], [g => bw.Grad(0, g), g => bw.Grad(1, g), g => bw.Grad(2, g)]);
    }

    /// <summary>The index of the last key that some query may see (−1 if none).</summary>
    private static int LastVisibleKey(Mask mask, int T, int L, int items)
    {
        if (mask.Causal) return Math.Min(T, L) - 1;
        if (mask.Values is null) return L - 1;
        int count = mask.ItemStride == 0 ? T : items * T;     // rows of the mask
        int last = -1;
        for (int r = 0; r < count && last < L - 1; r++)
        {
            int off = r * L;
            for (int j = L - 1; j > last; j--)
            {
                bool visible = mask.Values switch
                {
                    bool[] b => b[off + j],
                    float[] f => !float.IsNegativeInfinity(f[off + j]),
                    double[] d => !double.IsNegativeInfinity(d[off + j]),
                    _ => true,
                };
                if (visible) { last = j; break; }
            }
        }
        return last;
    }

    /// <summary>
    /// The three gradients of one recorded attention, computed together the first time the engine asks for
    /// one of them with a given g, then handed out one by one.
    /// </summary>
    private sealed class Backward(torch.Tensor q, torch.Tensor k, torch.Tensor v, torch.Tensor? mask, bool causal,
        torch.Tensor probs, int items, int T, int L, int D, int Dv)
    {
        private torch.Tensor? _g;
        private readonly torch.Tensor?[] _grads = new torch.Tensor?[3];

        public torch.Tensor Grad(int input, torch.Tensor g)
        {
            if (!ReferenceEquals(g, _g) || _grads[input] is null)
            {
                Compute(g);
                _g = g;
            }
            var r = _grads[input]!;
            _grads[input] = null;
            if (_grads[0] is null && _grads[1] is null && _grads[2] is null) _g = null;
            return r;
        }

        private void Compute(torch.Tensor g)
        {
            bool nq = q.requires_grad, nk = k.requires_grad, nv = v.requires_grad;
            double scale = 1.0 / Math.Sqrt(D);
            if (torch.is_grad_enabled())
            {
                // create_graph: the same formulas as differentiable ops, with P recomputed from q and k so that
                // its dependence on them is part of the new graph.
                var P = Probabilities(q, k, mask, causal);                                   // (…, T, L)
                var dP = torch.Tensor.MatmulT(g, v, false, true, Op);                        // g Vᵀ
                var dS = P.mul(dP.sub(dP.mul(P).sum(-1, keepdim: true))).mul(scale);         // P ⊙ (dP − Σ dP⊙P) / √D
                _grads[0] = nq ? torch.Tensor.MatmulT(dS, k, false, false, Op) : null;      // dS K / √D
                _grads[1] = nk ? torch.Tensor.MatmulT(dS, q, true, false, Op) : null;       // dSᵀ Q / √D
                _grads[2] = nv ? torch.Tensor.MatmulT(P, g, true, false, Op) : null;        // Pᵀ g
                return;
            }
            if (g._dtype != q._dtype) g = g.to_type(q._dtype);
            var dq = nq ? torch.Tensor.Empty(q._shape, q._dtype) : null;
            var dk = nk ? torch.Tensor.Empty(k._shape, k._dtype) : null;
            var dv = nv ? torch.Tensor.Empty(v._shape, v._dtype) : null;
            if (q._dtype == ScalarType.Float32)
                Kernels<float>.Backward(q.Arr<float>(), k.Arr<float>(), v.Arr<float>(), probs.Arr<float>(), g.Arr<float>(),
                    dq?.Arr<float>(), dk?.Arr<float>(), dv?.Arr<float>(), items, T, L, D, Dv);
            else
                Kernels<double>.Backward(q.Arr<double>(), k.Arr<double>(), v.Arr<double>(), probs.Arr<double>(), g.Arr<double>(),
                    dq?.Arr<double>(), dk?.Arr<double>(), dv?.Arr<double>(), items, T, L, D, Dv);
            (_grads[0], _grads[1], _grads[2]) = (dq, dk, dv);
        }
    }

    /// <summary>The per-item loops, for float and double.</summary>
    private static class Kernels<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        /// <summary>Below this many queries an item is done row by row (dot products and row updates over the keys
        /// each query sees); from it on with the GEMM kernel, which is about twice as fast even though it also
        /// computes the scores a causal mask hides.</summary>
        private const int GemmRows = 4;

        /// <summary>
        /// Y = softmax(Q Kᵀ/√D + mask) V for every item, reading keys 0 .. leff − 1 only. P (items, T, leff) is
        /// written when <paramref name="P"/> is given (for backward); otherwise a scratch buffer holds it.
        /// </summary>
        public static void Forward(T[] Q, T[] K, T[] V, T[] Y, T[]? P, Mask mask, int items, int Tq, int L, int leff, int D, int Dv)
        {
            T scale = T.One / T.Sqrt(T.CreateTruncating(D));
            long work = (long)Tq * leff * (D + Dv);
            Par.For(items, Par.Grain(work, 32768), (i0, i1) =>
            {
                var scratch = P is null ? ArrayPool<T>.Shared.Rent(Tq * leff) : null;
                try
                {
                    for (int n = i0; n < i1; n++)
                    {
                        var S = P ?? scratch!;
                        int sOff = P is null ? 0 : n * Tq * leff;
                        int qOff = n * Tq * D, kOff = n * L * D, vOff = n * L * Dv, yOff = n * Tq * Dv;

                        if (Tq < GemmRows)
                        {
                            // A few queries (a KV-cache step): row by row, only the keys each one may see.
                            for (int i = 0; i < Tq; i++)
                                Row(Q, qOff + i * D, K, kOff, V, vOff, Y, yOff + i * Dv, new Span<T>(S, sOff + i * leff, leff), scale, mask, n, i, L, D, Dv);
                            continue;
                        }
                        // S = Q Kᵀ (Tq × leff); each row: scale, mask, softmax; then Y = P V (Tq × Dv).
                        Gemm.Run(Tq, leff, D, Q, qOff, D, false, K, kOff, D, true, S, sOff, leff, false);
                        for (int i = 0; i < Tq; i++)
                            SoftmaxRow(new Span<T>(S, sOff + i * leff, leff), scale, mask, n, i, L);
                        Gemm.Run(Tq, Dv, leff, S, sOff, leff, false, V, vOff, Dv, false, Y, yOff, Dv, false);
                    }
                }
                finally
                {
                    if (scratch is not null) ArrayPool<T>.Shared.Return(scratch);
                }
            });
        }

        /// <summary>
        /// One query row without the GEMM kernel: s_j = (q·k_j)·scale (+ mask; −∞ where masked), p = softmax(s)
        /// (left in <paramref name="s"/>), y = Σ_j p_j v_j.
        /// </summary>
        private static void Row(T[] Q, int qOff, T[] K, int kOff, T[] V, int vOff, T[] Y, int yOff, Span<T> s,
            T scale, Mask mask, int n, int i, int L, int D, int Dv)
        {
            int mOff = (int)(n * mask.ItemStride) + i * L;
            var b = mask.Values as bool[];
            var f = mask.Values as T[];
            int end = VisibleEnd(mask, n, i, s.Length, L);
            T max = T.NegativeInfinity;
            for (int j = 0; j < end; j++)
            {
                T sj;
                if ((mask.Causal && j > i) || (b is not null && !b[mOff + j])) sj = T.NegativeInfinity;
                else
                {
                    sj = Dot(Q, qOff, K, kOff + j * D, D) * scale;
                    if (f is not null) sj += f[mOff + j];
                }
                s[j] = sj;
                max = T.Max(max, sj);
            }
            Normalise(s[..end], max);
            s[end..].Clear();
            var y = new Span<T>(Y, yOff, Dv);
            y.Clear();
            for (int j = 0; j < end; j++)
                if (s[j] != T.Zero) Axpy(s[j], V, vOff + j * Dv, y);
        }

        /// <summary>
        /// One past the last key row i of item n may see (of the first <paramref name="leff"/>): the softmax only
        /// needs keys before it, the rest get weight 0. Computed the same way for is_causal and for an equal
        /// bool or −∞ float mask, so those give the same bits. A row that sees no key keeps all of them (and
        /// comes out NaN, as softmax over −∞ does).
        /// </summary>
        private static int VisibleEnd(Mask mask, int n, int i, int leff, int L)
        {
            if (mask.Causal) return Math.Min(i + 1, leff);
            if (mask.Values is null) return leff;
            int off = (int)(n * mask.ItemStride) + i * L;
            int j = leff - 1;
            if (mask.Values is bool[] b) while (j >= 0 && !b[off + j]) j--;
            else if (mask.Values is T[] f) while (j >= 0 && T.IsNegativeInfinity(f[off + j])) j--;
            return j < 0 ? leff : j + 1;
        }

        /// <summary>p = e^(s − max) / Σ e^(s − max), in place (max = −∞, a fully masked row, gives NaN, as softmax
        /// does). One pass for e and its sum, one to scale; a short tail goes through a padded vector, so every
        /// element is computed by the same formula wherever it sits in the row.</summary>
        private static void Normalise(Span<T> s, T max)
        {
            int n = s.Length, w = Vector256<T>.Count, i = 0;
            ref T s0 = ref MemoryMarshal.GetReference(s);
            var vmax = Vector256.Create(max);
            var acc = Vector256<T>.Zero;
            for (; i <= n - w; i += w)
            {
                var e = VecMath.Exp(Vector256.LoadUnsafe(ref s0, (nuint)i) - vmax);
                e.StoreUnsafe(ref s0, (nuint)i);
                acc += e;
            }
            if (i < n)
            {
                Span<T> tail = stackalloc T[Vector256<T>.Count];
                tail.Fill(T.NegativeInfinity);                                  // e^(−∞ − max) = 0 adds nothing
                s[i..].CopyTo(tail);
                var e = VecMath.Exp(Vector256.Create((ReadOnlySpan<T>)tail) - vmax);
                e.CopyTo(tail);
                tail[..(n - i)].CopyTo(s[i..]);
                acc += e;
            }
            T inv = T.One / Vector256.Sum(acc);
            var vinv = Vector256.Create(inv);
            for (i = 0; i <= n - w; i += w) (Vector256.LoadUnsafe(ref s0, (nuint)i) * vinv).StoreUnsafe(ref s0, (nuint)i);
            for (; i < n; i++) s[i] *= inv;
        }

        /// <summary>row ← row·scale, returning the max (the scores of a row without a mask or with a causal one).</summary>
        private static T ScaleMax(Span<T> row, T scale)
        {
            int n = row.Length, w = Vector256<T>.Count, i = 0;
            ref T r0 = ref MemoryMarshal.GetReference(row);
            var vs = Vector256.Create(scale);
            var vmax = Vector256.Create(T.NegativeInfinity);
            for (; i <= n - w; i += w)
            {
                var x = Vector256.LoadUnsafe(ref r0, (nuint)i) * vs;
                x.StoreUnsafe(ref r0, (nuint)i);
                vmax = Vector256.Max(vmax, x);
            }
            T max = T.NegativeInfinity;
            for (int k = 0; k < w; k++) max = T.Max(max, vmax[k]);
            for (; i < n; i++) { row[i] *= scale; max = T.Max(max, row[i]); }
            return max;
        }

        /// <summary>a[aOff ..] · b[bOff ..] over n numbers.</summary>
        private static T Dot(T[] a, int aOff, T[] b, int bOff, int n)
        {
            ref T pa = ref MemoryMarshal.GetArrayDataReference(a);
            ref T pb = ref MemoryMarshal.GetArrayDataReference(b);
            if ((uint)aOff + (uint)n > (uint)a.Length || (uint)bOff + (uint)n > (uint)b.Length) throw new IndexOutOfRangeException();
            pa = ref Unsafe.Add(ref pa, aOff); pb = ref Unsafe.Add(ref pb, bOff);
            int w = Vector256<T>.Count, k = 0;
            var acc = Vector256<T>.Zero;
            for (; k <= n - w; k += w)
                acc += Vector256.LoadUnsafe(ref pa, (nuint)k) * Vector256.LoadUnsafe(ref pb, (nuint)k);
            T d = Vector256.Sum(acc);
            for (; k < n; k++) d += Unsafe.Add(ref pa, k) * Unsafe.Add(ref pb, k);
            return d;
        }

        /// <summary>y += c · x[xOff .. xOff + y.Length).</summary>
        private static void Axpy(T c, T[] x, int xOff, Span<T> y)
        {
            int n = y.Length;
            if ((uint)xOff + (uint)n > (uint)x.Length) throw new IndexOutOfRangeException();
            ref T px = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(x), xOff);
            ref T py = ref MemoryMarshal.GetReference(y);
            int w = Vector256<T>.Count, k = 0;
            var vc = Vector256.Create(c);
            for (; k <= n - w; k += w)
                (Vector256.LoadUnsafe(ref py, (nuint)k) + vc * Vector256.LoadUnsafe(ref px, (nuint)k)).StoreUnsafe(ref py, (nuint)k);
            for (; k < n; k++) Unsafe.Add(ref py, k) += c * Unsafe.Add(ref px, k);
        }

        /// <summary>row ← softmax(row·scale (+ mask)), masked keys −∞ (weight 0), keys after the last visible one
        /// set to 0 without computing them. Row i of item n; L is the mask's width.</summary>
        private static void SoftmaxRow(Span<T> row, T scale, Mask mask, int n, int i, int L)
        {
            int end = VisibleEnd(mask, n, i, row.Length, L);
            row[end..].Clear();
            row = row[..end];
            T max;
            if (mask.Values is null) max = ScaleMax(row, scale);           // no mask, or causal: every key before `end` is visible
            else
            {
                int off = (int)(n * mask.ItemStride) + i * L;
                var b = mask.Values as bool[];
                var f = mask.Values as T[];
                max = T.NegativeInfinity;
                for (int j = 0; j < row.Length; j++)
                {
                    T x = row[j] * scale;
                    if (b is not null) { if (!b[off + j]) x = T.NegativeInfinity; }
                    else x += f![off + j];
                    row[j] = x;
                    max = T.Max(max, x);
                }
            }
            Normalise(row, max);
        }

        /// <summary>
        /// Per item, with G = ∂L/∂Y: dP = G Vᵀ, dS = P ⊙ (dP − Σ_j dP ⊙ P)/√D, dQ = dS K, dK = dSᵀ Q, dV = Pᵀ G.
        /// Here every key is visible to some query (leff = L: the forward narrowed k and v otherwise).
        /// </summary>
        public static void Backward(T[] Q, T[] K, T[] V, T[] P, T[] G, T[]? dQ, T[]? dK, T[]? dV, int items, int Tq, int L, int D, int Dv)
        {
            T scale = T.One / T.Sqrt(T.CreateTruncating(D));
            long work = (long)Tq * L * (2 * D + 2 * Dv);
            Par.For(items, Par.Grain(work, 32768), (i0, i1) =>
            {
                var dS = ArrayPool<T>.Shared.Rent(Tq * L);
                try
                {
                    for (int n = i0; n < i1; n++)
                    {
                        int pOff = n * Tq * L, qOff = n * Tq * D, kOff = n * L * D, vOff = n * L * Dv, gOff = n * Tq * Dv;
                        if (dV is not null)                                                          // dV = Pᵀ G (L × Dv)
                            Gemm.Run(L, Dv, Tq, P, pOff, L, true, G, gOff, Dv, false, dV, vOff, Dv, false);
                        if (dQ is null && dK is null) continue;
                        Gemm.Run(Tq, L, Dv, G, gOff, Dv, false, V, vOff, Dv, true, dS, 0, L, false);  // dP = G Vᵀ (Tq × L)
                        for (int i = 0; i < Tq; i++)
                        {
                            var p = new ReadOnlySpan<T>(P, pOff + i * L, L);
                            var ds = new Span<T>(dS, i * L, L);
                            T dot = TensorPrimitives.Dot(p, ds);                                     // Σ_j dP_ij P_ij
                            TensorPrimitives.Subtract(ds, dot, ds);
                            TensorPrimitives.Multiply(ds, p, ds);
                            TensorPrimitives.Multiply(ds, scale, ds);                               // dS/√D
                        }
                        if (dQ is not null)                                                          // dQ = dS K (Tq × D)
                            Gemm.Run(Tq, D, L, dS, 0, L, false, K, kOff, D, false, dQ, qOff, D, false);
                        if (dK is not null)                                                          // dK = dSᵀ Q (L × D)
                            Gemm.Run(L, D, Tq, dS, 0, L, true, Q, qOff, D, false, dK, kOff, D, false);
                    }
                }
                finally
                {
                    ArrayPool<T>.Shared.Return(dS);
                }
            });
        }
    }
}
