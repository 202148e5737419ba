using System;
using System.IO;
using System.Linq;
using System.Text.Json;
using BatchNorm.Constraints;
using BatchNorm.Initializers;
using BatchNorm.Regularizers;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Layer;

public class ConfigJsonTests
{
    [Fact]
    public void Every_argument_round_trips_through_keras_json()
    {
        var layer = new BatchNormalization<double>(
            axis: 2, momentum: 0.9, epsilon: 1e-5, center: false, scale: true,
            betaInitializer: new Constant(0.25), gammaInitializer: new TruncatedNormal(1, 0.02, seed: 3),
            movingMeanInitializer: new RandomUniform(-0.1, 0.1, seed: 4), movingVarianceInitializer: new RandomNormal(1, 0.1),
            betaRegularizer: new L1L2(0.01, 0.02), gammaRegularizer: new L1(0.3), betaConstraint: new MinMaxNorm(0.5, 2, 0.5),
            gammaConstraint: new UnitNorm(), trainable: false, name: "bn_7",
            renorm: true, renormClipping: new RenormClipping(3, 0.3, null), renormMomentum: 0.95, synchronized: true);

        string json = layer.GetConfig().ToJson();
        BatchNormalization<double> rebuilt = BatchNormalization<double>.FromConfig(json);

        rebuilt.GetConfig().ToJson().Should().Be(json);
        rebuilt.Axis.Should().Be(2);
        rebuilt.Momentum.Should().Be(0.9);
        rebuilt.Epsilon.Should().Be(1e-5);
        rebuilt.Center.Should().BeFalse();
        rebuilt.Trainable.Should().BeFalse();
        rebuilt.Name.Should().Be("bn_7");
        rebuilt.DType.Should().Be("float64");
        rebuilt.Renorm.Should().BeTrue();
        rebuilt.RenormClipping.Should().Be(new RenormClipping(3, 0.3, null));
        rebuilt.RenormMomentum.Should().Be(0.95);
        rebuilt.Synchronized.Should().BeTrue();
        rebuilt.BetaInitializer.Should().BeOfType<Constant>().Which.Value.Should().Be(0.25);
        rebuilt.GammaInitializer.Should().BeOfType<TruncatedNormal>().Which.Seed.Should().Be(3);
        rebuilt.MovingMeanInitializer.Should().BeOfType<RandomUniform>().Which.Maxval.Should().Be(0.1);
        rebuilt.MovingVarianceInitializer.Should().BeOfType<RandomNormal>().Which.Seed.Should().BeNull();
        rebuilt.BetaRegularizer.Should().BeOfType<L1L2>().Which.L2Factor.Should().Be(0.02);
        rebuilt.GammaRegularizer.Should().BeOfType<L1>().Which.Factor.Should().Be(0.3);
        rebuilt.BetaConstraint.Should().BeOfType<MinMaxNorm>().Which.Rate.Should().Be(0.5);
        rebuilt.GammaConstraint.Should().BeOfType<UnitNorm>();

        using JsonDocument doc = JsonDocument.Parse(json);
        doc.RootElement.GetProperty("gamma_initializer").GetProperty("module").GetString().Should().Be("keras.initializers");
        doc.RootElement.GetProperty("gamma_initializer").GetProperty("class_name").GetString().Should().Be("TruncatedNormal");
        doc.RootElement.GetProperty("dtype").GetProperty("config").GetProperty("name").GetString().Should().Be("float64");
        doc.RootElement.GetProperty("beta_regularizer").GetProperty("config").GetProperty("l1").GetDouble().Should().Be(0.01);
    }

    [Fact]
    public void Layers_from_a_real_keras_format_model_json_load()
    {
        // Golden/data/tfjs_model.json is model.toJSON() from tfjs 4.22 (tf.keras 2 layer format).
        string path = Path.Combine(AppContext.BaseDirectory, "Golden", "data", "tfjs_model.json");
        using JsonDocument model = JsonDocument.Parse(File.ReadAllText(path));
        JsonElement[] layers = model.RootElement.GetProperty("config").GetProperty("layers").EnumerateArray()
            .Where(l => l.GetProperty("class_name").GetString() == "BatchNormalization").ToArray();
        layers.Should().HaveCount(3);

        var defaults = BatchNormalization<float>.FromConfig(layers[0].GetRawText());
        defaults.Name.Should().Be("bn_defaults");
        defaults.Momentum.Should().Be(0.99);
        defaults.Epsilon.Should().Be(1e-3);
        defaults.GammaInitializer.Should().BeOfType<Ones>();

        var custom = BatchNormalization<float>.FromConfig(layers[1].GetRawText());
        custom.Momentum.Should().Be(0.9);
        custom.Epsilon.Should().Be(1e-5);
        custom.Center.Should().BeFalse();
        custom.GammaInitializer.Should().BeOfType<RandomNormal>().Which.Seed.Should().Be(7);
        custom.MovingVarianceInitializer.Should().BeOfType<Constant>().Which.Value.Should().Be(2);
        custom.GammaRegularizer.Should().BeOfType<L1L2>().Which.L2Factor.Should().Be(0.001);
        custom.BetaRegularizer.Should().BeOfType<L1L2>().Which.L1Factor.Should().Be(0.01);
        custom.GammaConstraint.Should().BeOfType<MaxNorm>().Which.MaxValue.Should().Be(3);
        custom.BetaConstraint.Should().BeOfType<NonNeg>();

        var axis1 = BatchNormalization<float>.FromConfig(layers[2].GetRawText());
        axis1.Axis.Should().Be(1);
        axis1.Scale.Should().BeFalse();
        axis1.Trainable.Should().BeFalse();
    }

    [Fact]
    public void A_keras_3_layer_entry_loads()
    {
        // The Keras 3 model.to_json() shape of a layer: module/registered_name, a DTypePolicy, build_config.
        const string Json = """
            {"module": "keras.layers", "class_name": "BatchNormalization", "config": {"name": "batch_normalization", "trainable": true,
             "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_float16"}, "registered_name": null},
             "axis": -1, "momentum": 0.99, "epsilon": 0.001, "center": true, "scale": true,
             "beta_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": null},
             "gamma_initializer": {"module": "keras.initializers", "class_name": "Ones", "config": {}, "registered_name": null},
             "moving_mean_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": null},
             "moving_variance_initializer": {"module": "keras.initializers", "class_name": "Ones", "config": {}, "registered_name": null},
             "beta_regularizer": null, "gamma_regularizer": {"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.0005}, "registered_name": null},
             "beta_constraint": null, "gamma_constraint": null, "synchronized": false},
             "registered_name": null, "build_config": {"input_shape": [null, 32, 32, 16]}}
            """;
        BatchNormalization<float> layer = BatchNormalization<float>.FromConfig(Json);
        layer.DType.Should().Be("float32", "mixed_float16 keeps float32 variables");
        layer.GammaRegularizer.Should().BeOfType<L2>().Which.Factor.Should().Be(0.0005);
        layer.Renorm.Should().BeFalse();
    }

    [Fact]
    public void A_tf_keras_2_layer_config_with_a_list_axis_and_bare_names_loads()
    {
        const string Json = """
            {"name": "bn", "trainable": true, "batch_input_shape": [null, 8, 8, 3], "dtype": "float32", "axis": [3],
             "momentum": 0.9, "epsilon": 1e-05, "center": true, "scale": false, "beta_initializer": "zeros",
             "gamma_initializer": "ones", "moving_mean_initializer": "zeros", "moving_variance_initializer": "ones",
             "beta_regularizer": "l2", "gamma_regularizer": null, "beta_constraint": "non_neg", "gamma_constraint": null,
             "renorm": false, "renorm_clipping": null, "renorm_momentum": 0.99, "fused": true,
             "virtual_batch_size": null, "adjustment": null}
            """;
        BatchNormalization<float> layer = BatchNormalization<float>.FromConfig(Json);
        layer.Axis.Should().Be(3);
        layer.Scale.Should().BeFalse();
        layer.BetaRegularizer.Should().BeOfType<L2>();
        layer.BetaConstraint.Should().BeOfType<NonNeg>();
    }

    [Theory]
    [InlineData("{\"momentum\": 0.9,", "not valid JSON")]
    [InlineData("[1, 2]", "JSON object")]
    [InlineData("{\"momentumm\": 0.9}", "'momentumm'")]
    [InlineData("{\"momentum\": \"0.9\"}", "'momentum' to be a number")]
    [InlineData("{\"momentum\": 2}", "'momentum'")]
    [InlineData("{\"epsilon\": 0}", "'epsilon'")]
    [InlineData("{\"axis\": [1, 2]}", "several axes")]
    [InlineData("{\"axis\": 1.5}", "'axis' to be an integer")]
    [InlineData("{\"center\": 1}", "'center' to be true or false")]
    [InlineData("{\"gamma_initializer\": {\"class_name\": \"GlorotUniform\", \"config\": {}}}", "Unsupported initializer class 'GlorotUniform'")]
    [InlineData("{\"gamma_initializer\": \"glorot_uniform\"}", "'gamma_initializer'")]
    [InlineData("{\"beta_regularizer\": {\"config\": {}}}", "class_name")]
    [InlineData("{\"beta_constraint\": {\"class_name\": \"RadialConstraint\"}}", "Unsupported constraint class")]
    [InlineData("{\"renorm\": true, \"renorm_clipping\": {\"rmax\": 1, \"rmin\": 2}}", "'renorm_clipping'")]
    [InlineData("{\"renorm_clipping\": {\"rmaxx\": 1}}", "rmaxx")]
    [InlineData("{\"virtual_batch_size\": 8}", "virtual_batch_size")]
    [InlineData("{\"dtype\": \"int8\"}", "'dtype'")]
    [InlineData("{\"class_name\": \"Dense\", \"config\": {}}", "BatchNormalization")]
    public void Malformed_configs_are_format_errors_naming_the_key(string json, string expected)
    {
        Action act = () => BatchNormalizationConfig.FromJson(json);
        act.Should().Throw<FormatException>().Which.Message.Should().Contain(expected);
    }

    [Fact]
    public void A_float64_config_does_not_load_into_a_float32_layer()
    {
        string json = new BatchNormalization<double>().GetConfig().ToJson();
        Action act = () => BatchNormalization<float>.FromConfig(json);
        act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("config");
    }
}
