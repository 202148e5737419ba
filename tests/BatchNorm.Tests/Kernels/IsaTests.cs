using System;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using BatchNorm.Kernels;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;

namespace BatchNorm.Tests.Kernels;

/// <summary>Proves that each CI leg really runs the vector path it claims (DOTNET_Enable*=0 lowers the widest width).</summary>
[Trait("Category", "Kernels")]
public class IsaTests
{
    private readonly ITestOutputHelper _output;

    public IsaTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void The_widest_width_honours_the_runtime_switches()
    {
        _output.WriteLine($"Best width: {VectorWidths.Best}; supported: {string.Join(", ", VectorWidths.Supported)}");
        VectorWidths.Supported.Should().StartWith(VectorWidth.Scalar).And.EndWith(VectorWidths.Best);
        if (Environment.GetEnvironmentVariable("DOTNET_EnableHWIntrinsic") == "0")
        {
            VectorWidths.Best.Should().Be(VectorWidth.Scalar);
        }

        if (RuntimeInformation.ProcessArchitecture == Architecture.X64)
        {
            if (Environment.GetEnvironmentVariable("DOTNET_EnableAVX2") == "0")
            {
                VectorWidths.Best.Should().BeOneOf(VectorWidth.Vector128, VectorWidth.Scalar);
            }

            if (Environment.GetEnvironmentVariable("DOTNET_EnableAVX512") == "0")
            {
                Vector512.IsHardwareAccelerated.Should().BeFalse();
                VectorWidths.Best.Should().NotBe(VectorWidth.Vector512);
            }
        }
    }
}
