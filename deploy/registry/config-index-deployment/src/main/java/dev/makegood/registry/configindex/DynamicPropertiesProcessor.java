package dev.makegood.registry.configindex;

import apicurio.common.app.components.config.index.DynamicPropertiesInfoRecorder;
import io.apicurio.common.apps.config.DynamicConfigPropertyDef;
import io.apicurio.common.apps.config.DynamicConfigPropertyList;
import io.quarkus.arc.deployment.SyntheticBeanBuildItem;
import io.quarkus.deployment.annotations.BuildProducer;
import io.quarkus.deployment.annotations.BuildStep;
import io.quarkus.deployment.annotations.ExecutionTime;
import io.quarkus.deployment.annotations.Record;
import io.quarkus.deployment.builditem.CombinedIndexBuildItem;
import io.quarkus.deployment.builditem.FeatureBuildItem;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import javax.inject.Singleton;
import org.jboss.jandex.AnnotationInstance;
import org.jboss.jandex.AnnotationTarget;
import org.jboss.jandex.AnnotationValue;
import org.jboss.jandex.DotName;
import org.jboss.jandex.FieldInfo;
import org.jboss.jandex.ParameterizedType;
import org.jboss.jandex.Type;

/**
 * Finds every field annotated {@code @Dynamic} (a config property an admin may change at run
 * time) with its {@code @ConfigProperty} name and default, and publishes the list as a
 * {@link DynamicConfigPropertyList} bean through the runtime module's recorder.
 */
public class DynamicPropertiesProcessor {

    private static final DotName DYNAMIC = DotName.createSimple("io.apicurio.common.apps.config.Dynamic");
    private static final DotName CONFIG_PROPERTY =
            DotName.createSimple("org.eclipse.microprofile.config.inject.ConfigProperty");
    private static final Map<String, Class<?>> VALUE_TYPES = Map.of(
            "java.lang.Boolean", Boolean.class, "boolean", Boolean.class,
            "java.lang.Long", Long.class, "long", Long.class,
            "java.lang.Integer", Integer.class, "int", Integer.class,
            "java.lang.String", String.class);

    @BuildStep
    FeatureBuildItem feature() {
        return new FeatureBuildItem("apicurio-config-index");
    }

    @BuildStep
    @Record(ExecutionTime.STATIC_INIT)
    void dynamicProperties(DynamicPropertiesInfoRecorder recorder, CombinedIndexBuildItem index,
                           BuildProducer<SyntheticBeanBuildItem> beans) {
        List<DynamicConfigPropertyDef> defs = new ArrayList<>();
        for (AnnotationInstance dynamic : index.getIndex().getAnnotations(DYNAMIC)) {
            if (dynamic.target().kind() != AnnotationTarget.Kind.FIELD) {
                continue;
            }
            FieldInfo field = dynamic.target().asField();
            AnnotationInstance prop = field.annotation(CONFIG_PROPERTY);
            if (prop == null || prop.value("name") == null) {
                continue;
            }
            DynamicConfigPropertyDef def = new DynamicConfigPropertyDef(
                    prop.value("name").asString(), valueType(field.type()), string(prop.value("defaultValue")));
            def.setLabel(string(dynamic.value("label")));
            def.setDescription(string(dynamic.value("description")));
            AnnotationValue requires = dynamic.value("requires");
            def.setRequires(requires == null ? new String[0] : requires.asStringArray());
            defs.add(def);
        }
        defs.sort(Comparator.comparing(DynamicConfigPropertyDef::getName));
        beans.produce(SyntheticBeanBuildItem.configure(DynamicConfigPropertyList.class)
                .scope(Singleton.class)
                .runtimeValue(recorder.initializePropertiesInfo(defs))
                .done());
    }

    /** Supplier<Boolean> and friends: the value type is the type argument. */
    private static Class<?> valueType(Type type) {
        Type value = type;
        if (type.kind() == Type.Kind.PARAMETERIZED_TYPE) {
            ParameterizedType p = type.asParameterizedType();
            if (!p.arguments().isEmpty()) {
                value = p.arguments().get(0);
            }
        }
        return VALUE_TYPES.getOrDefault(value.name().toString(), String.class);
    }

    private static String string(AnnotationValue v) {
        return v == null ? null : v.asString();
    }
}
