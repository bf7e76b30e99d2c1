namespace MinRL.Tests;

public class KitTests
{
    [Fact] public void Version_is_set() => Assert.False(string.IsNullOrEmpty(MinRL.Kit.Version));
}
