namespace TorchSharp;

public static partial class torch
{
    public partial class Tensor
    {
        // =====================================================================================
        // Matrix products. Everything below reduces to one differentiable op, MatmulT:
        //
        //     Y = op(A) · op(B),   op(X) = X or Xᵀ (of the last two dims), batch dims broadcast.
        //
        // Its gradients are matrix products again, so they are written with MatmulT itself — which is
        // what makes double backward work. For Y = A·B (no transposes) and L = f(Y), with G = ∂L/∂Y:
        //
        //     ∂L/∂A = G · Bᵀ        ∂L/∂B = Aᵀ · G
        //
        // (Yᵢⱼ = Σₖ Aᵢₖ Bₖⱼ, so ∂L/∂Aᵢₖ = Σⱼ Gᵢⱼ Bₖⱼ and ∂L/∂Bₖⱼ = Σᵢ Aᵢₖ Gᵢⱼ.) With transposes, the
        // same identities rearranged: if Y = Aᵀ·B then ∂L/∂A = (G·Bᵀ)ᵀ = B·Gᵀ, and so on. The
        // transposes are flags passed to the GEMM kernel, never copies.
        // =====================================================================================

        /// <summary>
        /// Matrix product with PyTorch's <c>matmul</c> rules: 1-D · 1-D is a dot product (a 0-dim
        /// tensor); 2-D · 2-D a matrix product; a 1-D argument is treated as a row (on the left) or a
        /// column (on the right) and that dimension is removed from the result; with 3 or more dims the
        /// leading (batch) dims broadcast, e.g. [B, 1, M, K] · [H, K, N] → [B, H, M, N].
        /// </summary>
        public Tensor matmul(Tensor target)
        {
            var a = this; var b = target;
            CheckMatmulInputs(a, b, "matmul");
            int ra = a.Rank, rb = b.Rank;
            long ka = a._shape[ra - 1], kb = rb == 1 ? b._shape[0] : b._shape[rb - 2];
            if (ka != kb)
                throw new ArgumentException($"matmul: shapes {a.ShapeString} and {b.ShapeString} cannot be multiplied ({ka} vs {kb})");

            if (ra == 1 && rb == 1)                        // dot product: [K]·[K] → []
                return MatmulT(a.reshape(1, ka), b.reshape(ka, 1), false, false, "matmul").reshape();
            if (ra == 1)                                   // [K]·[..., K, N] → [..., N]
            {
                var y = MatmulT(a.reshape(1, ka), b, false, false, "matmul");
                return y.squeeze(-2);
            }
            if (rb == 1)                                   // [..., M, K]·[K] → [..., M]
            {
                // A stack of matrices times one vector is one tall matrix-vector product.
                var y = MatmulT(a.reshape(-1, ka), b.reshape(kb, 1), false, false, "matmul");
                return y.reshape(a._shape[..^1]);
            }
            if (ra >= 3 && rb == 2)
            {
                // [..., M, K]·[K, N]: fold the batch into the rows, one big product instead of many small ones.
                var y = MatmulT(a.reshape(-1, ka), b, false, false, "matmul");
                return y.reshape([.. a._shape[..^1], b._shape[1]]);
            }
            return MatmulT(a, b, false, false, "matmul");
        }

        /// <summary>Matrix product of two 2-D tensors: [M, K]·[K, N] → [M, N].</summary>
        public Tensor mm(Tensor target)
        {
            CheckMatmulInputs(this, target, "mm");
            if (Rank != 2 || target.Rank != 2)
                throw new ArgumentException($"mm: expected two 2-D tensors, got shapes {ShapeString} and {target.ShapeString} (use matmul for other ranks)");
            if (_shape[1] != target._shape[0])
                throw new ArgumentException($"mm: shapes {ShapeString} and {target.ShapeString} cannot be multiplied ({_shape[1]} vs {target._shape[0]})");
            return MatmulT(this, target, false, false, "mm");
        }

        /// <summary>Batched matrix product of two 3-D tensors with the same batch size: [B, M, K]·[B, K, N] → [B, M, N].</summary>
        public Tensor bmm(Tensor batch2)
        {
            CheckMatmulInputs(this, batch2, "bmm");
            if (Rank != 3 || batch2.Rank != 3)
                throw new ArgumentException($"bmm: expected two 3-D tensors, got shapes {ShapeString} and {batch2.ShapeString} (use matmul for other ranks)");
            if (_shape[0] != batch2._shape[0])
                throw new ArgumentException($"bmm: shapes {ShapeString} and {batch2.ShapeString} have different batch sizes ({_shape[0]} vs {batch2._shape[0]})");
            if (_shape[2] != batch2._shape[1])
                throw new ArgumentException($"bmm: shapes {ShapeString} and {batch2.ShapeString} cannot be multiplied ({_shape[2]} vs {batch2._shape[1]})");
            return MatmulT(this, batch2, false, false, "bmm");
        }

        private static void CheckMatmulInputs(Tensor a, Tensor b, string op)
        {
            if (a.Rank == 0 || b.Rank == 0)
                throw new ArgumentException($"{op}: both arguments need at least 1 dimension, got shapes {a.ShapeString} and {b.ShapeString}");
            if (a._dtype != b._dtype)
                throw new ArgumentException($"{op}: both arguments must have the same dtype, got {a._dtype} and {b._dtype} (convert one with .to_type(...))");
            if (!a.IsFloat)
                throw new ArgumentException($"{op}: only floating-point tensors (Float32, Float64) can be multiplied, got {a._dtype}");
        }

        /// <summary>
        /// Y = op(A) · op(B) on the last two dims, op = transpose when the flag is set; A and B have at least
        /// 2 dims and their leading dims broadcast. Recorded as one autograd node whose backward is MatmulT again.
        /// </summary>
        internal static Tensor MatmulT(Tensor a, Tensor b, bool transA, bool transB, string name)
        {
            int ra = a.Rank, rb = b.Rank;
            long M = transA ? a._shape[ra - 1] : a._shape[ra - 2], Ka = transA ? a._shape[ra - 2] : a._shape[ra - 1];
            long Kb = transB ? b._shape[rb - 1] : b._shape[rb - 2], N = transB ? b._shape[rb - 2] : b._shape[rb - 1];
            if (Ka != Kb)
                throw new ArgumentException($"{name}: shapes {a.ShapeString} and {b.ShapeString} cannot be multiplied ({Ka} vs {Kb})");
            var batchA = a._shape[..^2]; var batchB = b._shape[..^2];
            long[] batch;
            try { batch = Shapes.Broadcast(batchA, batchB, name); }
            catch (ArgumentException)
            {
                throw new ArgumentException($"{name}: the batch dimensions {Shapes.Str(batchA)} and {Shapes.Str(batchB)} of shapes {a.ShapeString} and {b.ShapeString} cannot be broadcast together");
            }
            var y = Empty([.. batch, M, N], a._dtype);
            MatmulForward(a, b, transA, transB, y, batch, (int)M, (int)N, (int)Ka, accumulate: false);

            // Gradients (G = ∂L/∂Y), each a product of G with the other operand, summed over broadcast batch dims.
            return Autograd.Record(y, name, a, b,
                g => (transA ? MatmulT(b, g, transB, true, name)       // A stored as Aᵀ: ∂L/∂A = op(B) · Gᵀ
                             : MatmulT(g, b, false, !transB, name))     // ∂L/∂A = G · op(B)ᵀ
                     .sum_to(a._shape),
                g => (transB ? MatmulT(g, a, true, transA, name)        // B stored as Bᵀ: ∂L/∂B = Gᵀ · op(A)
                             : MatmulT(a, g, !transA, false, name))     // ∂L/∂B = op(A)ᵀ · G
                     .sum_to(b._shape));
        }

        /// <summary>y (=, or += when <paramref name="accumulate"/>) op(a)·op(b), no autograd. y has shape [batch..., M, N].</summary>
        internal static void MatmulForward(Tensor a, Tensor b, bool transA, bool transB, Tensor y, long[] batch, int M, int N, int K, bool accumulate)
        {
            // Each operand's batch must be either one matrix (broadcast: stride 0) or the full batch; any
            // other broadcast pattern ([4, 1] with [1, 3]) is made full by copying (rare).
            long count = Shapes.Numel(batch);
            long BatchCount(Tensor t) => Shapes.Numel(t._shape.AsSpan(0, t.Rank - 2));
            if (BatchCount(a) != 1 && BatchCount(a) != count) a = a.detach().expand([.. batch, a._shape[^2], a._shape[^1]]);
            if (BatchCount(b) != 1 && BatchCount(b) != count) b = b.detach().expand([.. batch, b._shape[^2], b._shape[^1]]);
            long strideA = BatchCount(a) == 1 ? 0 : (long)M * K, strideB = BatchCount(b) == 1 ? 0 : (long)K * N;
            int lda = transA ? M : K, ldb = transB ? K : N;
            if (y._dtype == ScalarType.Float32)
                Gemm.Batched((int)count, M, N, K, a.Arr<float>(), 0, strideA, lda, transA, b.Arr<float>(), 0, strideB, ldb, transB,
                             y.Arr<float>(), 0, (long)M * N, N, accumulate);
            else
                Gemm.Batched((int)count, M, N, K, a.Arr<double>(), 0, strideA, lda, transA, b.Arr<double>(), 0, strideB, ldb, transB,
                             y.Arr<double>(), 0, (long)M * N, N, accumulate);
        }
    }

    /// <summary>Matrix product with PyTorch's broadcasting rules; see <see cref="Tensor.matmul"/>.</summary>
    public static Tensor matmul(Tensor input, Tensor target) => input.matmul(target);

    /// <summary>Matrix product of two 2-D tensors.</summary>
    public static Tensor mm(Tensor input, Tensor target) => input.mm(target);

    /// <summary>Batched matrix product of two 3-D tensors.</summary>
    public static Tensor bmm(Tensor input, Tensor batch2) => input.bmm(batch2);

    public static partial class nn
    {
        public static partial class functional
        {
            /// <summary>
            /// A fully connected layer: y = x·Wᵀ + b, with W of shape [out_features, in_features] and x of
            /// shape [..., in_features]. All leading dims of x are treated as one batch of rows, so a
            /// [B, T, C] input is a single [B·T, C]·[C, out] product.
            /// </summary>
            /// <remarks>
            /// Gradients, for the rows X (R × in) and G = ∂L/∂Y (R × out):
            /// ∂L/∂X = G·W,   ∂L/∂W = Gᵀ·X,   ∂L/∂b = Σ_rows G.
            /// </remarks>
            public static Tensor linear(Tensor input, Tensor weights, Tensor? bias = null)
            {
                if (weights.Rank != 2)
                    throw new ArgumentException($"linear: the weight must be 2-D [out_features, in_features], got shape {weights.ShapeString}");
                if (input.Rank == 0)
                    throw new ArgumentException($"linear: the input needs at least 1 dimension, got shape {input.ShapeString}");
                if (input._dtype != weights._dtype || (bias is not null && bias._dtype != input._dtype))
                    throw new ArgumentException($"linear: input, weight and bias must have the same dtype, got {input._dtype}, {weights._dtype}" + (bias is null ? "" : $" and {bias._dtype}"));
                if (!input.IsFloat)
                    throw new ArgumentException($"linear: only floating-point tensors (Float32, Float64) are supported, got {input._dtype}");
                long inF = weights._shape[1], outF = weights._shape[0];
                if (input._shape[^1] != inF)
                    throw new ArgumentException($"linear: shapes {input.ShapeString} and {weights.ShapeString} cannot be multiplied ({input._shape[^1]} vs {inF}): the input's last dimension must equal the weight's in_features (the weight is [out_features, in_features])");
                long[] outShape = [.. input._shape[..^1], outF];

                var x = input.reshape(-1, inF);
                if (bias is null || bias.Rank != 1 || bias._shape[0] != outF)
                {
                    var y = Tensor.MatmulT(x, weights, false, true, "linear").reshape(outShape);
                    return bias is null ? y : y + bias;
                }

                // y = x·Wᵀ + b, fused: start every row of y at b, then let the GEMM accumulate x·Wᵀ onto it.
                var yb = Tensor.Empty([x._shape[0], outF], input._dtype);
                if (yb._numel > 0) Array.Copy(bias._storage, yb._storage, outF);
                for (long filled = outF; filled < yb._numel; filled *= 2)
                    Array.Copy(yb._storage, 0, yb._storage, filled, Math.Min(filled, yb._numel - filled));
                Tensor.MatmulForward(x, weights, false, true, yb, [], (int)x._shape[0], (int)outF, (int)inF, accumulate: true);
                var w = weights;
                var result = Autograd.Record(yb, "linear", [x, w, bias],
                [
                    g => Tensor.MatmulT(g, w, false, false, "linear"),  // ∂L/∂X = G·W
                    g => Tensor.MatmulT(g, x, true, false, "linear"),   // ∂L/∂W = Gᵀ·X
                    g => g.sum(0),                                      // ∂L/∂b = Σ_rows G
                ]);
                return result.reshape(outShape);
            }
        }
    }
}
