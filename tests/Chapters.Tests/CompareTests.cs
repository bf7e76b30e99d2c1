using Compare;

namespace MinRL.Chapters.Tests;

/// <summary>The comparison tool (compare/Program.cs): which chapters it picks and the rows it prints.</summary>
public class CompareTests
{
    private static readonly string[] Folders = ["01-policy-gradient", "02-actor-critic-gae", "07-dpo", "shared", "tests", "compare"];

    [Fact]
    public void Select_all_takes_the_chapter_folders_in_book_order_and_nothing_else()
    {
        Assert.Equal(["01-policy-gradient", "02-actor-critic-gae", "07-dpo"], Program.Select("all", Folders.Reverse()));
    }

    [Fact]
    public void Select_accepts_numbers_with_or_without_a_zero_and_folder_names_and_keeps_book_order()
    {
        Assert.Equal(["01-policy-gradient", "07-dpo"], Program.Select("7, 01-policy-gradient,07", Folders));
    }

    [Fact]
    public void Select_names_the_unknown_chapter_and_lists_the_known_ones()
    {
        var e = Assert.Throws<LabUsageException>(() => Program.Select("01,09", Folders));
        Assert.Contains("'09'", e.Message);
        Assert.Contains("01-policy-gradient, 02-actor-critic-gae, 07-dpo", e.Message);
        // A chapter not present in this checkout is unknown too (08 is not in Folders).
        Assert.Throws<LabUsageException>(() => Program.Select("8", Folders));
    }

    [Fact]
    public void Row_reads_the_comparison_keys_and_marks_missing_ones()
    {
        var s = new RunSummary
        {
            Chapter = "07-dpo", Seed = 1, Metric = "held-out gold score (sampled, T = 1)",
            Base = 0.3125, Final = 0.5, Kl = double.NaN, WallS = 41.26, PeakMb = 612.4,
            Extra = { ["models_held"] = 2.0, ["trainable_params"] = 103_000.0 },
        };
        var row = Program.Row(s);
        Assert.Equal(Program.Headers.Length, row.Length);
        Assert.Equal("DPO", row[0]);
        Assert.Equal(2L, row[1]);
        Assert.Equal(103_000L, row[2]);
        Assert.Equal("—", row[3]);                       // samples_generated absent
        Assert.Equal("0.3125 → 0.5", row[5]);
        Assert.Equal("—", row[6]);                       // no KL
        Assert.Equal(41.3, row[7]);
        Assert.Equal(612.0, row[8]);
    }

    [Fact]
    public void Markdown_writes_a_header_a_rule_and_one_line_per_row()
    {
        var md = Program.Markdown(["a", "b"], [["x", 1234L], [null, 0.5]]);
        Assert.Equal("| a | b |\n|---|---|\n| x | 1,234 |\n| — | 0.5 |\n", md);
    }

    [Fact]
    public void Variants_split_on_semicolons_into_option_lists_and_name_their_folders()
    {
        Assert.Equal([[]], Program.ParseVariants(""));                                     // the defaults, once
        var v = Program.ParseVariants(" --loss dpo ; --loss simpo  --beta 2;");
        Assert.Equal(2, v.Count);
        Assert.Equal(["--loss", "dpo"], v[0]);
        Assert.Equal(["--loss", "simpo", "--beta", "2"], v[1]);
        Assert.Equal("loss-simpo-beta-2", Program.Slug("--loss simpo --beta 2"));
        Assert.Equal("loss-kto-beta-0.2", Program.Slug("--loss kto --beta 0.2"));
        Assert.Throws<LabUsageException>(() => Program.ParseVariants("--loss dpo --seed 3"));
    }

    [Fact]
    public void A_variant_row_names_its_options_after_the_algorithm()
    {
        var s = new RunSummary { Chapter = "07-dpo", Metric = "gold", Base = 0.3, Final = 0.5, Kl = 0.1 };
        Assert.Equal("DPO (--loss kto)", Program.Row(s, "--loss kto")[0]);
        Assert.Equal("DPO", Program.Row(s)[0]);
    }
}
