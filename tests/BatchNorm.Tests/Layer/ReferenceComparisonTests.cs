using System.Collections.Generic;
using System.Linq;
using Xunit;
using static BatchNorm.Tests.Layer.LayerHarness;

namespace BatchNorm.Tests.Layer;

public class ReferenceComparisonTests
{
    public static IEnumerable<object[]> ChannelCounts() =>
        new[] { 1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 64, 100 }.Select(c => new object[] { c });

    [Theory]
    [MemberData(nameof(ChannelCounts))]
    public void Every_channel_count_matches_the_reference_in_every_layout(int channels)
    {
        foreach (int batch in new[] { 1, 2 })
        {
            Scenario[] scenarios =
            [
                new([batch, channels], -1, Momentum: 0.5),
                new([batch, 3, channels], 2, Momentum: 0.5),
                new([batch, channels, 3], 1, Momentum: 0.5),
                new([batch, 2, 3, channels], -1, Momentum: 0.5),
                new([batch, channels, 2, 3], 1, Momentum: 0.5),
                new([batch, 2, channels, 2, 2], -3, Momentum: 0.5),
                new([channels, batch, 3], 0, Momentum: 0.5),
            ];
            foreach (Scenario s in scenarios)
            {
                Run<float>(s with { Seed = channels * 10 + batch });
                Run<double>(s with { Seed = channels * 10 + batch });
            }
        }
    }

    [Fact]
    public void Ranks_one_to_five_with_axis_first_middle_last_and_negative_match_the_reference()
    {
        Scenario[] scenarios =
        [
            new([7], 0, Momentum: 0.5),
            new([7], -1, Momentum: 0.5),
            new([4, 5], 0, Momentum: 0.5),
            new([4, 5], 1),
            new([4, 5], -2),
            new([3, 4, 5], 0),
            new([3, 4, 5], 1),
            new([3, 4, 5], -1),
            new([3, 4, 5], -3),
            new([2, 3, 4, 5], 0),
            new([2, 3, 4, 5], 2),
            new([2, 3, 4, 5], -1),
            new([2, 3, 4, 5], -4),
            new([2, 3, 2, 4, 5], 0),
            new([2, 3, 2, 4, 5], 2),
            new([2, 3, 2, 4, 5], 4),
            new([2, 3, 2, 4, 5], -2),
            new([2, 3, 2, 4, 5], -5),
        ];
        foreach (Scenario s in scenarios)
        {
            Run<float>(s);
            Run<double>(s);
        }
    }

    [Fact]
    public void Center_and_scale_in_all_four_combinations_match_the_reference()
    {
        foreach (bool center in new[] { true, false })
        {
            foreach (bool scale in new[] { true, false })
            {
                foreach (int[] shape in new[] { new[] { 6, 17 }, new[] { 2, 17, 3, 3 }, new[] { 1, 5 } })
                {
                    int axis = shape.Length == 4 ? 1 : -1;
                    Run<float>(new Scenario(shape, axis, center, scale, Momentum: 0.5));
                    Run<double>(new Scenario(shape, axis, center, scale, Momentum: 0.5));
                }
            }
        }
    }

    [Fact]
    public void Momentum_zero_half_keras_default_and_one_match_the_reference()
    {
        foreach (double momentum in new[] { 0, 0.5, 0.99, 1 })
        {
            Run<float>(new Scenario([8, 5], -1, Momentum: momentum));
            Run<float>(new Scenario([2, 5, 3, 3], 1, Momentum: momentum));
            Run<double>(new Scenario([8, 5], -1, Momentum: momentum));
        }
    }

    [Fact]
    public void Long_training_sequences_then_inference_match_the_reference()
    {
        bool[] steps = [true, true, true, true, true, true, true, true, true, true, true, true, false, false, true, false];
        Run<float>(new Scenario([32, 16], -1, Momentum: 0.9) { Steps = steps });
        Run<float>(new Scenario([4, 8, 5, 5], 1, Momentum: 0.9) { Steps = steps });
        Run<double>(new Scenario([4, 8, 5, 5], 1, Momentum: 0.9) { Steps = steps });
        Run<float>(new Scenario([300, 64], -1, Momentum: 0.99, Offset: 5, Spread: 3) { Steps = steps });
    }

    [Fact]
    public void Trainable_false_always_runs_in_inference_mode()
    {
        Run<float>(new Scenario([8, 5], -1, Trainable: false) { Steps = [true, true, false] });
        Run<double>(new Scenario([2, 5, 4], 1, Trainable: false) { Steps = [true, false, true] });
    }

    [Fact]
    public void Epsilon_values_from_pytorch_keras_and_large_match_the_reference()
    {
        foreach (double epsilon in new[] { 1e-5, 1e-3, 0.1, 10 })
        {
            Run<float>(new Scenario([16, 6], -1, Epsilon: epsilon, Spread: 0.05));
            Run<double>(new Scenario([16, 6], -1, Epsilon: epsilon, Spread: 0.05));
        }
    }
}
