namespace MinTorch;

public static partial class torch
{
    public static partial class nn
    {
        public static partial class functional
        {
            /// <summary>
            /// Attention(Q, K, V) = softmax(Q Kᵀ / √D + mask) V, over the last two dims:
            /// query (…, T, D), key and value (…, L, D) → (…, T, D).
            /// </summary>
            /// <remarks>
            /// <paramref name="attn_mask"/> is either bool (true = may attend, as in PyTorch) or float (added to
            /// the scores). <paramref name="is_causal"/> lets query i see keys 0..i only. Written with the engine's
            /// differentiable ops, so its gradient (and its gradient's gradient) comes from theirs:
            /// with P = softmax(S), dV = Pᵀ g, dP = g Vᵀ, dS = P ⊙ (dP − Σ_j dP ⊙ P), dQ = dS K / √D, dK = dSᵀ Q / √D.
            /// </remarks>
            public static Tensor scaled_dot_product_attention(Tensor query, Tensor key, Tensor value, Tensor? attn_mask = null, double p = 0.0, bool is_causal = false)
            {
                if (p != 0.0) throw new ArgumentException("scaled_dot_product_attention: dropout (p > 0) is not supported by MinTorch");
                if (query.Rank < 2 || key.Rank < 2 || value.Rank < 2)
                    throw new ArgumentException($"scaled_dot_product_attention: query, key and value need at least 2 dims, got {query.ShapeString}, {key.ShapeString}, {value.ShapeString}");
                long T = query._shape[^2], L = key._shape[^2], D = query._shape[^1];
                if (key._shape[^1] != D || value._shape[^2] != L)
                    throw new ArgumentException($"scaled_dot_product_attention: shapes do not fit: query {query.ShapeString}, key {key.ShapeString}, value {value.ShapeString}");
                var scores = query.matmul(key.transpose(-2, -1)).mul(1.0 / Math.Sqrt(D));     // (…, T, L)
                if (is_causal)
                {
                    if (attn_mask is not null) throw new ArgumentException("scaled_dot_product_attention: pass either attn_mask or is_causal, not both");
                    attn_mask = ones(T, L, dtype: ScalarType.Bool).tril();                   // (T, L)
                }
                if (attn_mask is not null)
                {
                    scores = attn_mask._dtype == ScalarType.Bool
                        ? scores.masked_fill(attn_mask.logical_not(), double.NegativeInfinity)
                        : scores + attn_mask;
                }
                var probs = scores.softmax(-1);                                               // (…, T, L)
                return probs.matmul(value);                                                   // (…, T, D)
            }
        }
    }
}
