namespace TorchSharp;

public static partial class torch
{
    public partial class Tensor
    {
        // Views that only relabel the shape of a contiguous tensor: they share storage, and their
        // backward is the inverse relabelling (a reshape of g back to the input's shape).

        /// <summary>Inserts a size-1 dim at <paramref name="dim"/> (-1 appends).</summary>
        public Tensor unsqueeze(long dim)
        {
            int d = Shapes.Dim(dim, Rank + 1, "unsqueeze");
            var s = _shape.ToList(); s.Insert(d, 1);
            return reshape(s.ToArray());
        }

        /// <summary>Removes size-1 dims: all of them, or only <paramref name="dim"/> (if it has size 1).</summary>
        public Tensor squeeze(long? dim = null)
        {
            if (dim is long dd)
            {
                if (Rank == 0) return reshape();
                int d = Shapes.Dim(dd, Rank, "squeeze");
                if (_shape[d] != 1) return this;
                return reshape(_shape.Where((_, i) => i != d).ToArray());
            }
            return reshape(_shape.Where(s => s != 1).ToArray());
        }

        /// <summary>Flattens dims <paramref name="start_dim"/>..<paramref name="end_dim"/> into one.</summary>
        public Tensor flatten(long start_dim = 0, long end_dim = -1)
        {
            if (Rank == 0) return reshape(1);
            int s = Shapes.Dim(start_dim, Rank, "flatten"), e = Shapes.Dim(end_dim, Rank, "flatten");
            if (s > e) throw new ArgumentException($"flatten: start_dim ({start_dim}) must not come after end_dim ({end_dim})");
            var shape = new List<long>();
            long merged = 1;
            for (int i = 0; i < Rank; i++)
            {
                if (i < s || i > e) shape.Add(_shape[i]);
                else { merged *= _shape[i]; if (i == e) shape.Add(merged); }
            }
            return reshape(shape.ToArray());
        }
    }
}
