using Xunit;
using static BatchNorm.Tests.Layer.LayerHarness;

namespace BatchNorm.Tests.Layer;

/// <summary>Numerically hard inputs through the public API, compared with the float64 reference (not just "no NaN").</summary>
public class HardDataTests
{
    [Theory]
    [InlineData(1e4, 1)]
    [InlineData(1, 1e-4)]
    [InlineData(1e18, 1e16)]
    [InlineData(-3e4, 0.5)]
    public void Large_offsets_and_tiny_spreads_match_the_reference(double offset, double spread)
    {
        Scenario[] scenarios =
        [
            new([512, 5], -1, Momentum: 0.5, Offset: offset, Spread: spread),
            new([8, 6, 20, 20], 1, Momentum: 0.5, Offset: offset, Spread: spread),
            new([4096, 1], -1, Momentum: 0.5, Offset: offset, Spread: spread),
            new([2, 3], 1, Momentum: 0.5, Offset: offset, Spread: spread),
        ];
        foreach (Scenario s in scenarios)
        {
            Run<float>(s);
            Run<double>(s);
        }
    }

    [Fact]
    public void Constant_channels_normalize_to_beta_with_zero_variance()
    {
        // Spread 0: every channel is constant, the batch variance is 0 and y = beta exactly (up to rounding).
        Run<float>(new Scenario([300, 7], -1, Momentum: 0.5, Offset: 1e4, Spread: 0));
        Run<float>(new Scenario([4, 7, 9, 9], 1, Momentum: 0.5, Offset: 3, Spread: 0));
        Run<double>(new Scenario([300, 7], -1, Momentum: 0.5, Offset: 1e4, Spread: 0));
    }
}
